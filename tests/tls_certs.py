"""Throwaway certificates for the TLS tests, generated at test time (no keys are committed).

``make_pki(directory)`` writes, as PEM files:

* ``ca.pem`` / ``ca.key`` — the test CA; ``other-ca.pem`` — an unrelated CA
* ``server.pem`` / ``server.key`` — for ``localhost`` and ``127.0.0.1``, signed by the CA
* ``client.pem`` / ``client.key`` — a client certificate signed by the CA
* ``rogue-client.pem`` / ``rogue-client.key`` — a client certificate signed by the other CA
* ``expired.pem`` / ``expired.key`` — a server certificate that expired yesterday
* ``wrong-host.pem`` / ``wrong-host.key`` — a server certificate for ``example.invalid`` only

``make_openssl_pki(directory)`` makes certificates the way users make them with the openssl
CLI: upstream RPyC's test_ssl.py recipe (a self-signed ``server.crt`` that is also the CA, v1
``client.crt``...) and negative shapes; see ``scripts/openssl-recipe-certs.sh`` for the list.
"""

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rpyc-rs tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))


def _ca(directory: Path, stem: str, common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 30 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        # Key identifiers: Python 3.13's ssl verifies strictly (VERIFY_X509_STRICT) and
        # refuses a chain whose certificates lack them ("Missing Authority Key Identifier").
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, stem, cert, key)
    return cert, key


def _leaf(directory: Path, stem: str, issuer, common_name: str, *, client: bool = False,
          hosts: Optional[list] = None, expired: bool = False) -> None:
    ca_cert, ca_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - 30 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if hosts:
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def make_pki(directory: Path) -> Dict[str, str]:
    """Write the certificate set into ``directory``; returns ``{stem: path}`` for every file
    (``"server.pem"`` -> ``"/tmp/.../server.pem"``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca", "rpyc-rs test CA")
    other = _ca(directory, "other-ca", "unrelated CA")
    _leaf(directory, "server", ca, "localhost", hosts=["localhost", "127.0.0.1", "::1"])
    _leaf(directory, "client", ca, "test client", client=True)
    _leaf(directory, "rogue-client", other, "rogue client", client=True)
    _leaf(directory, "expired", ca, "localhost", hosts=["localhost", "127.0.0.1"], expired=True)
    _leaf(directory, "wrong-host", ca, "example.invalid", hosts=["example.invalid"])
    return {p.name: str(p) for p in directory.iterdir()}


OPENSSL_RECIPE = Path(__file__).resolve().parents[1] / "scripts" / "openssl-recipe-certs.sh"


def have_openssl_cli() -> bool:
    return shutil.which("openssl") is not None and shutil.which("bash") is not None


def make_openssl_pki(directory: Path) -> Dict[str, str]:
    """Run the openssl-CLI recipe into ``directory``; returns ``{file name: path}``. Needs the
    ``openssl`` command (callers skip when :func:`have_openssl_cli` is false)."""
    directory = Path(directory)
    subprocess.run(["bash", str(OPENSSL_RECIPE), str(directory)], check=True, timeout=300)
    return {p.name: str(p) for p in directory.iterdir()}


if __name__ == "__main__":  # used by the interop peers' tests: write a set into argv[1]
    import sys

    make_pki(Path(sys.argv[1]))
