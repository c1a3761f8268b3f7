"""A throwaway certificate authority for tests: TLS for registries and keys for token signing.

Terms:
  CA        a self-signed certificate with ``basicConstraints CA:true`` that tests trust (pass its
            PEM file as a registry's ``ca`` in hosts.toml, or as httpx's ``verify``).
  leaf      a certificate the CA signed: a server certificate for ``127.0.0.1``/``localhost`` or a
            token-signing certificate that docker-registry verifies up to its ``rootcertbundle``.

Keys are ECDSA P-256: quick to generate and accepted by Go's TLS stack and by libtrust (ES256).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class CertFiles:
    """PEM files of one certificate and its private key, written to disk."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Leaf:
    """A certificate signed by a :class:`TestCA`, with its key, in memory and on disk."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    files: CertFiles

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A certificate authority living in ``directory``; ``ca_pem`` is the file clients trust."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, directory: Path, *, name: str = "pinnace test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = directory / "ca.pem"
        self.ca_pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        ip_addresses: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        server: bool = False,
    ) -> Leaf:
        """Sign a new leaf certificate called ``name``; files land in ``directory/name.*``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if server:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(cert=self.directory / f"{name}.pem", key=self.directory / f"{name}.key")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(_key_pem(key))
        files.key.chmod(0o600)
        return Leaf(certificate=cert, private_key=key, files=files)

    def issue_server(self, name: str = "registry") -> Leaf:
        """A server certificate valid for ``127.0.0.1``, ``::1`` and ``localhost``."""
        return self.issue(
            name, ip_addresses=("127.0.0.1", "::1"), dns_names=("localhost",), server=True
        )
