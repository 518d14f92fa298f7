"""Certificates for tests of mutual TLS, made with the ``openssl`` command: a CA, and
certificates for 127.0.0.1 it signs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A CA's certificate and key, in ``folder``."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
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


def install(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` as a renewal does: a new file renamed over the old."""
    shutil.copyfile(source, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)
