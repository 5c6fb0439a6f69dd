"""``App(..., trusted_ca=...)`` against a ``shoal-server`` serving TLS (``--tls-cert``,
``--tls-key``) with a CA and certificate made by the ``openssl`` command at test time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import shoal
from shoal_server import ShoalServer

from conftest import APP_ID


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path):
    """(CA PEM path, server certificate path, server key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path / "pki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Shoal Python test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d / "ca.pem", d / "server.pem", d / "server.key"


@pytest.fixture
def tls_server(tmp_path, pki):
    ca, cert, key = pki
    server = ShoalServer(tmp_path / "tls-data", "--tls-cert", str(cert), "--tls-key", str(key), ca_file=ca)
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


def test_login_over_https_with_a_trusted_ca_path_or_pem(tmp_path, pki, tls_server):
    ca, _, _ = pki
    assert tls_server.auth_url.startswith("https://")
    with shoal.App(tmp_path / "a", APP_ID, trusted_ca=ca) as app:
        user = app.login(shoal.Credentials.password("py-tls", "pw", register=True), tls_server.auth_url)
        assert user.is_valid
    # The PEM itself, as bytes or text.
    for given in (ca.read_bytes(), ca.read_text()):
        with shoal.App(tmp_path / f"b{len(given)}{type(given).__name__}", APP_ID, trusted_ca=given) as app:
            assert app.login(shoal.Credentials.password("py-tls", "pw"), tls_server.auth_url).is_valid


def test_without_the_ca_a_login_fails_with_a_certificate_error(tmp_path, tls_server):
    with shoal.App(tmp_path / "c", APP_ID) as app:
        with pytest.raises(shoal.IoError, match="(?i)certificate"):
            app.login(shoal.Credentials.password("py-tls-2", "pw", register=True), tls_server.auth_url)


def test_a_trusted_ca_must_hold_a_certificate(tmp_path):
    with pytest.raises(shoal.InvalidArgument):
        shoal.App(tmp_path / "d", APP_ID, trusted_ca=b"not a certificate")
    with pytest.raises(FileNotFoundError):
        shoal.App(tmp_path / "e", APP_ID, trusted_ca=tmp_path / "missing.pem")
