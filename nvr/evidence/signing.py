"""The server's Ed25519 signing key: created once with owner-only permissions, then reused.

Signing and checking go through the ``cryptography`` library (RFC 8032 Ed25519).
"""

import hashlib
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from nvr.errors import StorageError
from nvr.log import fields

log = logging.getLogger(__name__)

OWNER_ONLY = 0o600


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The private key at ``path``, generated there (mode 0600) if absent. Blocking.

    A key file readable by group or others has its mode narrowed back to 0600, with a
    warning: the key is what makes packages trustworthy.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create_key(path)
    except OSError as exc:
        raise StorageError(f"cannot read signing key {path}: {exc.strerror}") from exc
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "signing key was readable by others; mode set to 0600 %s",
            fields(path=path, mode=oct(mode)),
        )
        path.chmod(OWNER_ONLY)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise StorageError(
            f"signing key {path} is not a PEM private key: {exc}"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError(f"signing key {path} is not an Ed25519 key")
    return key


def _create_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as exc:
        raise StorageError(f"cannot create signing key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    log.info(
        "signing key created %s",
        fields(path=path, key=key_fingerprint(key.public_key())),
    )
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM, as bundled in packages and served by the API."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parses a PEM public key; ValueError when it is not an Ed25519 key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the 32 raw public key bytes: how a key is named in reports."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def signature_valid(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
