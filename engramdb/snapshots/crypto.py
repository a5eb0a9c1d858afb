"""Sealing snapshot segments with AES-256-GCM, keyed by 32 bytes or a scrypt passphrase.

See :mod:`engramdb.snapshots.format` for what is sealed and what each
block's associated data binds it to.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

from engramdb.errors import SnapshotError, SnapshotIntegrityError, SnapshotKeyError, ValidationError
from engramdb.snapshots.manifest import FORMAT_VERSION, MAGIC, Encryption

__all__ = ["Key", "new_sealer", "open_sealed", "opener", "seal"]

SCHEME = "aes-256-gcm"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 16, 8, 1
"""scrypt cost for passphrases: 64 MiB and a fraction of a second per derivation."""
_SCRYPT_MAX_BYTES = 1 << 30
BLOCK_BYTES = 4 << 20
_NONCE = 12
_TAG = 16

Key = bytes | str


def _check_key_arg(key: object) -> None:
    if key is None or isinstance(key, str):
        if isinstance(key, str) and not key:
            raise ValidationError("key '' is an empty passphrase; pass a real one")
        return
    if not isinstance(key, bytes):
        raise ValidationError(f"key must be 32 bytes or a passphrase str, got {type(key).__name__}")


def _new_encryption(key: Key) -> tuple[Encryption, bytes]:
    _check_key_arg(key)
    file_id = os.urandom(16).hex()
    if isinstance(key, str):
        salt = os.urandom(16)
        enc = Encryption(
            scheme=SCHEME,
            kdf="scrypt",
            salt=salt.hex(),
            n=SCRYPT_N,
            r=SCRYPT_R,
            p=SCRYPT_P,
            file_id=file_id,
            block=BLOCK_BYTES,
        )
        return enc, _scrypt(key.encode("utf-8"), enc)
    if len(key) != 32:
        raise ValidationError(
            f"key of {len(key)} bytes is not an AES-256 key; pass 32 random bytes "
            "(os.urandom(32)) or a passphrase str"
        )
    return Encryption(scheme=SCHEME, kdf="none", file_id=file_id, block=BLOCK_BYTES), key


def _scrypt(secret: bytes, enc: Encryption) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    n, r, p = enc.n or 0, enc.r or 0, enc.p or 0
    if not (n > 1 and n & (n - 1) == 0 and 1 <= r <= 64 and 1 <= p <= 16) or (
        128 * n * r * p > _SCRYPT_MAX_BYTES
    ):
        raise SnapshotError(
            f"scrypt parameters n={n} r={r} p={p} are out of bounds; the file is damaged "
            "or was not made by engramdb"
        )
    try:
        salt = bytes.fromhex(enc.salt or "")
    except ValueError:
        raise SnapshotError("scrypt salt is not hex; the file is damaged") from None
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _key_for(enc: Encryption, key: object, path: Path) -> bytes:
    how = "a passphrase" if enc.kdf == "scrypt" else "a 32-byte key"
    if key is None:
        raise SnapshotKeyError(
            f"snapshot {path} is encrypted ({enc.scheme}, sealed with {how}); pass key= "
            "(CLI: --passphrase or --key-file)"
        )
    _check_key_arg(key)
    if enc.kdf == "scrypt":
        secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)  # type: ignore[call-overload]
        return _scrypt(secret, enc)
    if not isinstance(key, bytes) or len(key) != 32:
        raise SnapshotKeyError(
            f"snapshot {path} was sealed with a 32-byte key, not a passphrase; pass the "
            "key's 32 bytes (CLI: --key-file)"
        )
    return key


def _aad(enc: Encryption, segment: int, block: int, last: bool) -> bytes:
    return (
        MAGIC
        + struct.pack(">H", FORMAT_VERSION)
        + bytes.fromhex(enc.file_id)
        + struct.pack(">IIB", segment, block, last)
    )


def seal(data: bytes, aes: Any, enc: Encryption, segment: int) -> bytes:
    out = io.BytesIO()
    starts = range(0, max(len(data), 1), enc.block)
    for i, start in enumerate(starts):
        nonce = os.urandom(_NONCE)
        last = i == len(starts) - 1
        block = data[start : start + enc.block]
        out.write(nonce)
        out.write(aes.encrypt(nonce, block, _aad(enc, segment, i, last)))
    return out.getvalue()


def open_sealed(sealed: Any, aes: Any, enc: Encryption, segment: int, path: Path) -> bytes:
    from cryptography.exceptions import InvalidTag

    data = memoryview(sealed)
    step = enc.block + _NONCE + _TAG
    starts = range(0, max(len(data), 1), step)
    out = bytearray()
    for i, start in enumerate(starts):
        chunk = data[start : start + step]
        if len(chunk) < _NONCE + _TAG:
            raise SnapshotIntegrityError(f"snapshot {path}: a sealed block is cut short")
        try:
            out += aes.decrypt(
                bytes(chunk[:_NONCE]),
                bytes(chunk[_NONCE:]),
                _aad(enc, segment, i, i == len(starts) - 1),
            )
        except InvalidTag:
            raise SnapshotKeyError(
                f"cannot decrypt snapshot {path}: wrong key or passphrase (or the file was "
                "altered after it was sealed); check the key"
            ) from None
    return bytes(out)


def new_sealer(key: Key) -> tuple[Encryption, Any]:
    """Fresh encryption parameters for a new file and the AES-GCM cipher they key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    enc, raw = _new_encryption(key)
    return enc, AESGCM(raw)


def opener(enc: Encryption, key: object, path: Path) -> Any:
    """The AES-GCM cipher that opens the file at ``path``, from the caller's key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_key_for(enc, key, path))
