"""Client-credentials auth: secret, Basic, certificate assertion, expiry; MSAL over HTTPS (§1)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.emulator.conftest import CLIENT_ID, SCOPE, SECRET, TENANT, Emu, start_emulator


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backup app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _assertion(
    key: rsa.RSAPrivateKey, cert: x509.Certificate, aud: str, alg: str = "RS256", exp_in: int = 600
) -> str:
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {"alg": alg, "typ": "JWT"}
    if alg == "RS256":
        header["x5t"] = _b64(hashlib.sha1(der).digest())
    else:
        header["x5t#S256"] = _b64(hashlib.sha256(der).digest())
    now = int(time.time())
    claims = {
        "aud": aud,
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "exp": now + exp_in,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    signed = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    pad = (
        padding.PKCS1v15()
        if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    )
    return f"{signed}.{_b64(key.sign(signed.encode(), pad, hashes.SHA256()))}"


def _token(emu: Emu, **form: str) -> httpx.Response:
    return httpx.post(emu.token_url, data={"grant_type": "client_credentials", "scope": SCOPE, **form})


def test_openid_configuration(emu: Emu) -> None:
    r = httpx.get(f"{emu.base}/{TENANT}/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.json()["token_endpoint"] == emu.token_url
    assert "authorization_endpoint" in r.json()


def test_secret_basic_and_errors(emu: Emu) -> None:
    ok = _token(emu, client_id=CLIENT_ID, client_secret=SECRET)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    basic = httpx.post(
        emu.token_url, data={"grant_type": "client_credentials", "scope": SCOPE}, auth=(CLIENT_ID, SECRET)
    )
    assert basic.status_code == 200
    bad = _token(emu, client_id=CLIENT_ID, client_secret="wrong")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.json()["error_codes"] == [7000215] and "Trace ID" in bad.json()["error_description"]
    scope = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "User.Read",
        },
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    other = httpx.post(
        f"{emu.base}/fabrikam.onmicrosoft.com/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": SCOPE,
        },
    )
    assert other.status_code == 400


def test_bearer_rules(emu: Emu) -> None:
    r = httpx.get(f"{emu.graph}/users")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert r.json()["error"]["message"] == "Access token is empty."
    r = httpx.get(f"{emu.graph}/users", headers={"Authorization": "Bearer forged.token"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_tokens_expire(emu: Emu) -> None:
    assert emu.admin("POST", "config", {"tokenLifetimeSeconds": 1}).status_code == 200
    try:
        token = emu.token()
        assert (
            httpx.get(f"{emu.graph}/users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
        time.sleep(1.2)
        r = httpx.get(f"{emu.graph}/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    finally:
        emu.admin("POST", "config", {"tokenLifetimeSeconds": 3599})


def test_certificate_assertion(emu: Emu) -> None:
    key, cert = _certificate()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    unknown = _token(
        emu,
        client_id=CLIENT_ID,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=_assertion(key, cert, emu.token_url),
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    reg = emu.admin("POST", "certificates", {"pem": pem})
    assert reg.status_code == 201
    kind = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    for alg in ("RS256", "PS256"):
        ok = _token(
            emu,
            client_id=CLIENT_ID,
            client_assertion_type=kind,
            client_assertion=_assertion(key, cert, emu.token_url, alg),
        )
        assert ok.status_code == 200, ok.text
    wrong_aud = _token(
        emu,
        client_id=CLIENT_ID,
        client_assertion_type=kind,
        client_assertion=_assertion(key, cert, "https://login.microsoftonline.com/x/oauth2/v2.0/token"),
    )
    assert wrong_aud.status_code == 401
    expired = _token(
        emu,
        client_id=CLIENT_ID,
        client_assertion_type=kind,
        client_assertion=_assertion(key, cert, emu.token_url, exp_in=-5),
    )
    assert expired.status_code == 401
    other_key, _ = _certificate()
    forged = _token(
        emu,
        client_id=CLIENT_ID,
        client_assertion_type=kind,
        client_assertion=_assertion(other_key, cert, emu.token_url),
    )
    assert forged.status_code == 401 and "signature" in forged.json()["error_description"]


@pytest.fixture(scope="module")
def https_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    e = start_emulator(tmp_path_factory.mktemp("https") / "state", https=True)
    try:
        yield e
    finally:
        e.process.terminate()


def test_msal_over_https_with_pinned_certificate(https_emu: Emu) -> None:
    import msal

    ca = Path(https_emu.state_dir) / "emulator-cert.pem"
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=f"{https_emu.base}/{TENANT}",
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    session.close()
    assert "access_token" in result, result
    assert app.acquire_token_for_client(scopes=[SCOPE])["token_source"] == "cache"
    r = httpx.get(
        f"{https_emu.graph}/users",
        headers={"Authorization": f"Bearer {result['access_token']}"},
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    assert r.status_code == 200 and r.json()["value"]
    session.close()


def test_msal_with_a_certificate_credential(https_emu: Emu) -> None:
    import msal

    key, cert = _certificate()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    thumb = https_emu.admin("POST", "certificates", {"pem": pem}).json()["thumbprint"]
    session = requests.Session()
    session.trust_env = False
    session.verify = str(https_emu.state_dir / "emulator-cert.pem")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential={"private_key": key_pem, "thumbprint": thumb},
        authority=f"{https_emu.base}/{TENANT}",
        instance_discovery=False,
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    session.close()
    assert "access_token" in result, result


def test_clock_offset_ages_tokens_without_waiting(emu: Emu) -> None:
    token = emu.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{emu.graph}/users", headers=headers).status_code == 200
    assert emu.admin("POST", "config", {"clockOffsetSeconds": 3600}).status_code == 200
    try:
        assert httpx.get(f"{emu.graph}/users", headers=headers).status_code == 401
        assert (
            httpx.get(f"{emu.graph}/users", headers={"Authorization": f"Bearer {emu.token()}"}).status_code
            == 200
        )
    finally:
        emu.admin("POST", "config", {"clockOffsetSeconds": 0})
