"""Certificates for tests of mutual TLS, made with the ``openssl`` command: a CA, and
certificates for 127.0.0.1 it signs; and with the ``cryptography`` library, certificates
that expire when a test needs, and their expiry."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


#: Days a test CA lasts: beyond the node's warning of a CA's expiry
#: (``node.peers.tls_expiry.TLS_EXPIRY_WARN_DAYS``), so that only the certificates of two
#: days it signs are warned of.
CA_DAYS = 30


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA's certificate and key, in ``folder``."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", str(CA_DAYS),
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return folder / f"{name}.pem", folder / f"{name}.key"


def make_cert(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, good as server and client, signed by ``ca``."""
    (folder / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
            f"/CN={name}", cwd=folder)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile",
            f"{name}.ext", cwd=folder)
    return folder / f"{name}.pem", folder / f"{name}.key"


def bundle(target: Path, *pems: Path) -> Path:
    """The files ``pems`` one after the other (a fullchain, a CA bundle), at ``target``."""
    target.write_bytes(b"".join(pem.read_bytes() for pem in pems))
    return target


def install(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` as a renewal does: a new file renamed over the old."""
    shutil.copyfile(source, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)


def _build(folder: Path, name: str, days: float, begins_days: float,
           signer: tuple[Path, Path] | None,
           extensions: list[tuple[x509.ExtensionType, bool]]) -> tuple[Path, Path]:
    """A certificate named ``name`` for a new key, valid from ``begins_days`` to ``days``
    from now, signed by ``signer`` (self-signed without), written with its key to
    ``folder`` (made with the ``cryptography`` library: ``openssl x509 -days`` takes
    whole days from now only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer, signing_key = subject, key
    if signer is not None:
        issuer = x509.load_pem_x509_certificate(signer[0].read_bytes()).subject
        loaded = serialization.load_pem_private_key(signer[1].read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        signing_key = loaded
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=begins_days))
               .not_valid_after(now + datetime.timedelta(days=days)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(signing_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / f"{name}.pem", folder / f"{name}.key"


#: Five minutes ago, in days: when the certificates made here begin unless told.
FIVE_MINUTES_AGO_DAYS = -5 / (24 * 60)


def make_cert_expiring(folder: Path, name: str, ca: tuple[Path, Path], days: float,
                       begins_days: float = FIVE_MINUTES_AGO_DAYS) -> tuple[Path, Path]:
    """A certificate like ``make_cert``'s that expires ``days`` from now (valid from
    ``begins_days`` from now, five minutes ago unless given)."""
    return _build(folder, name, days, begins_days, ca, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                      x509.DNSName("localhost")]), False)])


#: An extension no X.509 profile defines (under the enterprise number kept for
#: documentation, RFC 5612), for ``make_cert_with_unknown_critical_extension``.
UNKNOWN_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.32473.1")


def make_cert_with_unknown_critical_extension(folder: Path, name: str,
                                              ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate like ``make_cert``'s with an extension marked critical that no
    verifier knows, which OpenSSL refuses (``unhandled critical extension``)."""
    return _build(folder, name, 2, FIVE_MINUTES_AGO_DAYS, ca, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                      x509.DNSName("localhost")]), False),
        (x509.UnrecognizedExtension(UNKNOWN_EXTENSION, b"\x05\x00"), True)])


def make_ca_expiring(folder: Path, name: str, days: float,
                     signer: tuple[Path, Path] | None = None,
                     begins_days: float = FIVE_MINUTES_AGO_DAYS) -> tuple[Path, Path]:
    """A CA's certificate and key, in ``folder``, that expires ``days`` from now (valid
    from ``begins_days``): self-signed, or an intermediate ``signer`` signs."""
    return _build(folder, name, days, begins_days, signer, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                       decipher_only=False), True)])


def long_length_form(pem: Path, target: Path) -> Path:
    """``pem`` with its outer length written in one byte more than DER allows: OpenSSL
    reads it, the ``cryptography`` library refuses it (``InvalidLength``). At ``target``."""
    der = x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    assert der[:2] == b"\x30\x82", "a certificate of 256 to 65535 bytes"
    body = base64.encodebytes(b"\x30\x83\x00" + der[2:]).decode()
    target.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    return target


def trusted_form(pem: Path, target: Path) -> Path:
    """``pem`` as ``openssl x509 -trustout`` writes it (``BEGIN TRUSTED CERTIFICATE``: the
    certificate, then trust settings), at ``target``."""
    openssl("x509", "-in", str(pem), "-trustout", "-addtrust", "serverAuth",
            "-out", str(target), cwd=target.parent)
    return target


def sign_again(folder: Path, name: str, subject: tuple[Path, Path],
               signer: tuple[Path, Path], days: float,
               begins_days: float = FIVE_MINUTES_AGO_DAYS) -> Path:
    """A CA certificate of ``subject``'s name and key, signed by ``signer`` (``subject``
    itself: the CA issued again, with new dates; another CA: a cross-sign), valid from
    ``begins_days`` to ``days`` from now, written to ``folder`` as ``name``.pem."""
    cert = x509.load_pem_x509_certificate(subject[0].read_bytes())
    issuer = x509.load_pem_x509_certificate(signer[0].read_bytes())
    key = serialization.load_pem_private_key(signer[1].read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    again = (x509.CertificateBuilder()
             .subject_name(cert.subject)
             .issuer_name(issuer.subject)
             .public_key(cert.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now + datetime.timedelta(days=begins_days))
             .not_valid_after(now + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(key, hashes.SHA256()))
    (folder / f"{name}.pem").write_bytes(again.public_bytes(serialization.Encoding.PEM))
    return folder / f"{name}.pem"


def unknown_version_form(pem: Path, target: Path) -> Path:
    """``pem`` with its version field v4, which no X.509 version is: OpenSSL loads it,
    the ``cryptography`` library refuses it (``InvalidVersion``). At ``target``."""
    der = bytearray(x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(
        serialization.Encoding.DER))
    at = der.find(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT INTEGER 2: v3
    assert at >= 0, "a v3 certificate"
    der[at + 4] = 3
    # Refused for its version, not as corrupt (a ValueError): the form a test names.
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(bytes(der))
    body = base64.encodebytes(bytes(der)).decode()
    target.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    return target


def expires(pem: Path) -> float:
    """The certificate ``pem``'s notAfter, in Unix seconds (as the gauge gives it)."""
    return x509.load_pem_x509_certificate(pem.read_bytes()).not_valid_after_utc.timestamp()

