"""Encrypted keyfile: credentials as JSON sealed with AES-256-GCM.

File: `{"v": 1, "nonce": <b64 12 bytes>, "ciphertext": <b64>}`; the associated data binds
the format version. The 32-byte key is given as urlsafe base64 (`tickpipe keys genkey`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AAD = b"tickpipe-keyfile-v1"


class KeyfileError(ValueError):
    """Never carries key material or plaintext."""


def new_key() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise KeyfileError("keyfile key is not base64") from None
    if len(key) != 32:
        raise KeyfileError("keyfile key must be 32 bytes (AES-256)")
    return key


def seal(fields: dict[str, str], key: bytes) -> bytes:
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, json.dumps(fields).encode(), AAD)
    doc = {
        "v": 1,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ct).decode(),
    }
    return json.dumps(doc).encode()


def unseal(blob: bytes, key: bytes) -> dict[str, str]:
    try:
        doc = json.loads(blob)
        nonce = base64.b64decode(doc["nonce"])
        ct = base64.b64decode(doc["ciphertext"])
    except (ValueError, KeyError, TypeError):
        raise KeyfileError("keyfile is malformed") from None
    try:
        plain = AESGCM(key).decrypt(nonce, ct, AAD)
    except InvalidTag:
        raise KeyfileError("keyfile cannot be decrypted with this key") from None
    fields = json.loads(plain)
    return {str(k): str(v) for k, v in fields.items()}


def write_keyfile(path: Path, fields: dict[str, str], key: bytes) -> None:
    blob = seal(fields, key)
    # Owner-only from the first byte: never briefly world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)


def read_keyfile(path: Path, key: bytes) -> dict[str, str]:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise KeyfileError(f"cannot read keyfile {path} ({type(exc).__name__})") from None
    return unseal(blob, key)
