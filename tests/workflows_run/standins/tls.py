"""A throwaway certificate authority and a server certificate for 127.0.0.1 (openssl CLI), per test session.

GitHub's API is HTTPS only, and peter-evans/create-pull-request derives ``https://<host>/api/v3`` from the git
remote: the stand-ins must speak TLS. Clients in the jobs trust them through a CA bundle made of the system's
CAs plus this one, so PyPI and npm keep working through the same variables.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Variables through which the jobs' clients find trusted CAs (Python ssl/requests/pip/uv, curl, git, Node).
CA_BUNDLE_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)

_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    bundle: Path  # the system CAs + ca_cert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def environment(self) -> dict[str, str]:
        """The CA variables pointed at the combined bundle (for act, hence every job process)."""
        return dict.fromkeys(CA_BUNDLE_VARIABLES, str(self.bundle))


def system_ca_bundle() -> Path:
    """The CA bundle this machine's clients use (the outbound path may re-sign TLS: keep trusting it)."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("no system CA bundle found (SSL_CERT_FILE, or OpenSSL's default cafile)")


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def issue_certificates(directory: Path) -> TlsFiles:
    """A P-256 CA (2 days) and a certificate it signs for IP 127.0.0.1, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(_SERVER_EXTENSIONS)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
        "-subj", "/CN=housing-mlops act stand-in CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", extensions,
    )  # fmt: skip
    bundle = directory / "ca-bundle.pem"
    bundle.write_text(system_ca_bundle().read_text() + "\n" + ca_cert.read_text())
    return TlsFiles(ca_cert=ca_cert, server_cert=cert, server_key=key, bundle=bundle)
