"""TLS: with a certificate and key configured the API speaks HTTPS only."""

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nvr.auth.tls import server_ssl_context
from nvr.config import HttpConfig, parse_config
from nvr.errors import ConfigError
from nvr.simulate.cameras import free_port


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def test_tls_configured_https_works_plain_http_fails(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    port = free_port()
    http = HttpConfig(listen=f"127.0.0.1:{port}", tls_cert=cert_path, tls_key=key_path)
    app = web.Application()
    app.router.add_get("/healthz", _ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(
        runner, http.host, http.port, ssl_context=server_ssl_context(http)
    )
    await site.start()
    trusting = ssl.create_default_context(cafile=str(cert_path))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"https://127.0.0.1:{port}/healthz", ssl=trusting
            ) as response:
                secure = response.status
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    await response.read()
    finally:
        await runner.cleanup()

    assert secure == 200


def test_tls_config_cert_without_key_refused(tmp_path: Path) -> None:
    cert_path, _ = _self_signed(tmp_path)

    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        parse_config(f'[http]\ntls_cert = "{cert_path}"\n')


def test_tls_config_missing_file_refused(tmp_path: Path) -> None:
    cert_path, _ = _self_signed(tmp_path)
    missing = tmp_path / "nope.pem"

    with pytest.raises(ConfigError, match="no such file"):
        parse_config(f'[http]\ntls_cert = "{cert_path}"\ntls_key = "{missing}"\n')


def test_tls_key_not_matching_cert_config_error(tmp_path: Path) -> None:
    cert_path, _ = _self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = _self_signed(other)

    with pytest.raises(ConfigError, match="cannot load"):
        server_ssl_context(HttpConfig(tls_cert=cert_path, tls_key=other_key))


def test_tls_not_configured_no_context() -> None:
    assert server_ssl_context(HttpConfig()) is None
