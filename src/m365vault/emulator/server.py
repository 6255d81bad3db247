"""Start the emulator: state dir, self-signed certificate, uvicorn."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365vault.emulator.app import Emulator
from m365vault.emulator.auth import register_certificate
from m365vault.emulator.clock import system_clock
from m365vault.emulator.world import Settings, World


def ensure_certificate(state_dir: Path, host: str) -> tuple[Path, Path]:
    """A self-signed server certificate in the state dir (kept across restarts so clients can pin it)."""
    cert_path, key_path = state_dir / "emulator-cert.pem", state_dir / "emulator-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365vault Graph emulator")])
    now = dt.datetime.fromtimestamp(system_clock(), dt.UTC)
    alt: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(alt))), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def build(settings: Settings, client_cert: Path | None = None) -> tuple[World, Emulator]:
    world = World(settings)
    if client_cert is not None:
        register_certificate(world, client_cert.read_bytes())
    cert_file = settings.state_dir / "client-certificates.pem"
    if client_cert is not None:
        cert_file.write_bytes(client_cert.read_bytes())
    elif cert_file.exists():  # a restart keeps the registered certificate
        register_certificate(world, cert_file.read_bytes())
    return world, Emulator(world)


def run(settings: Settings, host: str, port: int, *, https: bool, client_cert: Path | None = None) -> None:
    world, app = build(settings, client_cert)
    kept = world.settings
    ignored = [
        flag
        for flag, given, stored in (
            ("--tenant", settings.tenant, kept.tenant),
            ("--seed", settings.seed, kept.seed),
            ("--scale", settings.scale, kept.scale),
            ("--client-id", settings.client_id or kept.client_id, kept.client_id),
        )
        if given != stored
    ]
    if ignored:
        print(
            f"note: {settings.state_dir} already holds a tenant; "
            f"{', '.join(ignored)} apply only to a new state dir"
        )
    scheme = "https" if https else "http"
    base = f"{scheme}://{host}:{port}"
    print(f"tenant:        {world.tenant.domain} ({world.tenant.tenant_id})")
    print(f"client id:     {world.settings.client_id}")
    print(f"client secret: {world.settings.client_secret}")
    print(f"scale/seed:    {world.tenant.scale}/{world.seed}")
    print(f"graph:         {base}/v1.0")
    print(f"authority:     {base}/{world.tenant.domain}")
    print(f"token:         {base}/{world.tenant.domain}/oauth2/v2.0/token")
    print(f"state dir:     {settings.state_dir}")
    cert_file: str | None = None
    key_file: str | None = None
    if https:
        cert, key = ensure_certificate(settings.state_dir, host)
        print(f"certificate:   {cert}")
        cert_file, key_file = str(cert), str(key)
    print(f"base url:      {base}", flush=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,  # clients holding keep-alive connections must not delay a stop
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietInjectedDrops())
    uvicorn.Server(config).run()


class _QuietInjectedDrops(logging.Filter):
    """Dropped connections are injected on purpose (faultRate); uvicorn need not report them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()
