"""HTTPS in-process (AICODE_TLS_CERT / AICODE_TLS_KEY), with a test CA: the API, the CLI and Chromium
over TLS, HSTS and Secure cookies; bad certificate settings fail at start-up."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import async_playwright

from aicode.settings import Settings, SettingsError
from tests.browser_fixtures import CHROMIUM, CHROMIUM_ARGS
from tests.cli_support import REPO, LiveServer, serve_in_thread
from tests.conftest import ADMIN

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    spki_sha256: str  # base64, as Chromium's --ignore-certificate-errors-spki-list wants it


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA, and a certificate it signed for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("aicode test CA")).issuer_name(_name("aicode test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = Certs(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server-key.pem",
                  spki_sha256=base64.b64encode(_spki(cert)).decode())
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    paths.key.chmod(0o600)
    return paths


def _spki(cert: x509.Certificate) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize()


@pytest.fixture
def https_server(task_settings: Settings, certs: Certs) -> Iterator[LiveServer]:
    with serve_in_thread(dataclasses.replace(task_settings, tls_cert=certs.cert, tls_key=certs.key)) as server:
        yield server


def test_the_server_speaks_https_with_hsts_and_secure_cookies(https_server: LiveServer, certs: Certs) -> None:
    assert https_server.url.startswith("https://")
    with httpx.Client(base_url=https_server.url, verify=ssl.create_default_context(cafile=certs.ca), timeout=30) as http:
        health = http.get("/healthz")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        page = http.get("/login")
        csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        signed_in = http.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                              "_csrf_token": csrf.group(1)})
        assert signed_in.status_code == 303
        session = next(h for h in signed_in.headers.get_list("set-cookie") if h.startswith("aicode_session="))
        assert "secure" in session.lower() and "httponly" in session.lower()
        jar = {cookie.name: cookie for cookie in http.cookies.jar}
        assert jar["aicode_csrf"].secure and jar["aicode_session"].secure
    # Without the CA, the certificate is not trusted; plain http gets no answer from the TLS listener.
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=5) as untrusting:
        untrusting.get(f"{https_server.url}/healthz")
    with pytest.raises(httpx.HTTPError), httpx.Client(timeout=5) as plain:
        plain.get(https_server.url.replace("https://", "http://") + "/healthz")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aicode", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_cli_works_over_https_when_it_trusts_the_ca(https_server: LiveServer, certs: Certs,
                                                        tmp_path: Path) -> None:
    with httpx.Client(base_url=https_server.url, verify=ssl.create_default_context(cafile=certs.ca), timeout=30) as http:
        login = http.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        made = http.post("/api/tokens", json={"name": "cli"},
                         headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        token = made.json()["token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICODE_", "SSL_CERT", "REQUESTS_CA"))}
    env.update({"HOME": str(tmp_path), "AICODE_SERVER": https_server.url, "AICODE_TOKEN": token})
    refused = _cli(env, "workspace", "list")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "certificate" in refused.stderr.lower(), refused.stderr
    trusted = _cli({**env, "SSL_CERT_FILE": str(certs.ca)}, "workspace", "list", "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() == "[]"


async def test_chromium_signs_in_over_https(https_server: LiveServer, certs: Certs) -> None:
    async with async_playwright() as playwright:
        # Chromium trusts this server's key the way an enterprise policy would pin it (no NSS database here).
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={certs.spki_sha256}"])
        try:
            context = await browser.new_context(base_url=https_server.url)
            page = await context.new_page()
            await page.goto("/login")
            await page.get_by_label("Username").fill(ADMIN[0])
            await page.get_by_label("Password").fill(ADMIN[1])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{https_server.url}/")
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["aicode_session"]["secure"] and cookies["aicode_csrf"]["secure"]
            assert await page.evaluate("location.protocol") == "https:"
            await context.close()
        finally:
            await browser.close()


def test_bad_certificate_settings_fail_at_start_up(tmp_path: Path, certs: Certs) -> None:
    base = {"AICODE_DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="go together"):
        Settings.from_env({**base, "AICODE_TLS_CERT": str(certs.cert)})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(SettingsError, match="cannot be used"):
        Settings.from_env({**base, "AICODE_TLS_CERT": str(garbage), "AICODE_TLS_KEY": str(certs.key)})
    with pytest.raises(SettingsError, match="cannot be used"):
        Settings.from_env({**base, "AICODE_TLS_CERT": str(certs.cert), "AICODE_TLS_KEY": str(tmp_path / "none.pem")})
    settings = Settings.from_env({**base, "AICODE_TLS_CERT": str(certs.cert), "AICODE_TLS_KEY": str(certs.key)})
    assert settings.site_url.startswith("https://")

