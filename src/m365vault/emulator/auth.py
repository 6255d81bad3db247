"""Client-credentials token endpoint and bearer checks (graph-protocol.md §1).

Secrets arrive in the form or as HTTP Basic; certificates as a client-assertion JWT (RS256 with
x5t, or PS256 with x5t#S256) whose signature is verified against a registered certificate.
Access tokens are opaque signed strings naming (tenant, app, expiry); the emulator keeps no table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from m365vault.emulator.errors import GraphError
from m365vault.emulator.http import Req, Resp
from m365vault.emulator.tokens import InvalidToken
from m365vault.emulator.world import World

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ROLES = [
    "User.Read.All",
    "Group.Read.All",
    "Mail.ReadWrite",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
    "MailboxSettings.Read",
]


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def register_certificate(world: World, pem: bytes) -> dict[str, str]:
    """Accept a client certificate for the app; answers its thumbprints."""
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(
        encoding=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).Encoding.DER
    )
    sha1, sha256 = hashlib.sha1(der).digest(), hashlib.sha256(der).digest()
    world.certificates[_b64e(sha1)] = cert
    world.certificates[_b64e(sha256)] = cert
    return {"thumbprint": sha1.hex().upper(), "x5t": _b64e(sha1), "x5t#S256": _b64e(sha256)}


def _oauth_error(world: World, status: int, error: str, code: int, description: str) -> Resp:
    trace = secrets.token_hex(16)
    return Resp(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {trace}\r\nTimestamp: {world.now_iso()}",
            "error_codes": [code],
            "timestamp": world.now_iso().replace("T", " "),
            "trace_id": trace,
            "correlation_id": trace,
        },
    )


def openid_configuration(world: World, req: Req) -> Resp:
    tenant = req.params["tenant"]
    base = f"{req.base_url}/{tenant}"
    return Resp(
        200,
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{req.base_url}/{world.tenant.tenant_id}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "EU",
        },
    )


def _verify_assertion(world: World, req: Req, assertion: str, client_id: str) -> str | None:
    """None if valid, else the reason."""
    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        header, claims = json.loads(_b64d(head_b64)), json.loads(_b64d(body_b64))
        signature = _b64d(sig_b64)
    except (ValueError, json.JSONDecodeError):
        return "The client assertion is not a well-formed JWT."
    thumb = header.get("x5t#S256") or header.get("x5t")
    cert = world.certificates.get(str(thumb).rstrip("="))  # MSAL keeps base64 padding, others drop it
    if cert is None:
        return f"The certificate with identifier used to sign the client assertion is not registered: {thumb}"
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return "Only RSA certificates are supported."
    signed = f"{head_b64}.{body_b64}".encode()
    alg = header.get("alg")
    try:
        if alg == "RS256":
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            key.verify(
                signature,
                signed,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                hashes.SHA256(),
            )
        else:
            return f"Unsupported signing algorithm {alg}."
    except InvalidSignature:
        return "Client assertion contains an invalid signature."
    token_url = f"{req.base_url}/{req.params['tenant']}/oauth2/v2.0/token"
    aud = claims.get("aud")
    if aud not in (token_url, f"{req.base_url}/{world.tenant.tenant_id}/oauth2/v2.0/token"):
        return f"The audience claim value is invalid '{aud}'."
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return "The issuer and subject of the client assertion must be the client id."
    now = world.now()
    if float(claims.get("exp", 0)) <= now:
        return "The provided client assertion is expired."
    if float(claims.get("nbf", 0)) > now + 300:
        return "The provided client assertion is not yet valid."
    return None


def token(world: World, req: Req) -> Resp:
    form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    tenant = req.params["tenant"].lower()
    if tenant not in (world.tenant.domain.lower(), world.tenant.tenant_id):
        return _oauth_error(world, 400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(
            world, 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    basic = req.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except ValueError:
            return _oauth_error(world, 401, "invalid_client", 7000215, "Invalid client secret provided.")
    scope = form.get("scope", "")
    if scope != GRAPH_SCOPE and scope != "00000003-0000-0000-c000-000000000000/.default":
        return _oauth_error(
            world,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier.",
        )
    if client_id != world.settings.client_id:
        return _oauth_error(
            world,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory.",
        )
    if form.get("client_assertion_type") == ASSERTION_TYPE:
        reason = _verify_assertion(world, req, form.get("client_assertion", ""), client_id)
        if reason:
            return _oauth_error(world, 401, "invalid_client", 700027, reason)
    elif secret is None or not hmac.compare_digest(secret, world.settings.client_secret):
        return _oauth_error(world, 401, "invalid_client", 7000215, "Invalid client secret provided.")
    lifetime = world.config.token_lifetime_seconds
    access = world.signer.mint(
        "access",
        {"tid": world.tenant.tenant_id, "app": client_id, "exp": world.now() + lifetime, "roles": ROLES},
    )
    return Resp(
        200,
        {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access},
    )


def check_bearer(world: World, req: Req) -> str:
    """The app id of a valid bearer token, or 401 InvalidAuthenticationToken."""
    header = req.headers.get("authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims: dict[str, Any] = world.signer.read("access", header[7:].strip())
    except InvalidToken as exc:
        raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.") from exc
    if float(claims["exp"]) <= world.now():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
    return str(claims["app"])
