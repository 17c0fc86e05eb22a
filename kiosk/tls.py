"""The kiosk's TLS identity: a key and self-signed certificate made on first start.

The certificate's fingerprint (sha256 of the DER) is published in the mDNS TXT record
and bound into pairing; controllers pin it. The key never leaves ``state_dir/tls``
(mode 0600). Deleting that folder gives the panel a new identity, and every controller
must pair again.
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from protocol.pairing import cert_fingerprint
from protocol.usage_chain import UsageKey

CERT_VALID_DAYS = 20 * 365


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    cert_path: Path
    key_path: Path
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the kiosk's websocket server."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def ensure_identity(state_dir: Path, kiosk_id: str) -> TlsIdentity:
    """Load the kiosk's key and certificate, creating them on first start."""
    tls_dir = state_dir / "tls"
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    if not (cert_path.exists() and key_path.exists()):
        _make_identity(tls_dir, cert_path, key_path, kiosk_id)
    # read with ssl, not cryptography: an idle panel does not load cryptography (~8 MB)
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text(encoding="ascii"))
    return TlsIdentity(cert_path, key_path, cert_fingerprint(der))


def _make_identity(tls_dir: Path, cert_path: Path, key_path: Path, kiosk_id: str) -> None:
    """Make the key and the self-signed certificate (first start only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ClassCast kiosk {kiosk_id}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    tmp_key.replace(key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp_cert.replace(cert_path)


def ensure_signing_key(state_dir: Path) -> UsageKey:
    """The kiosk's Ed25519 key that signs its usage records, made on first start.

    Kept in ``state_dir/usage_key.pem`` (mode 0600); the school database pins its public
    half at the first collection, so replacing it shows up there.
    """
    path = state_dir / "usage_key.pem"
    if not path.exists():
        pem = UsageKey.generate().to_pem()
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    try:
        return UsageKey.from_pem(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path} does not hold an Ed25519 key: {exc}") from None
