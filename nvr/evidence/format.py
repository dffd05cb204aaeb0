"""The evidence package format: entry names, canonical JSON, and the signature encoding.

docs/evidence.md is the full description; the constants here are its source of truth.
"""

import base64
import binascii
import json
from typing import Any

FORMAT = "nvr-evidence/1"
VIDEO_ENTRY = "video.mp4"
MANIFEST_ENTRY = "manifest.json"
SIGNATURE_ENTRY = "manifest.sig"
PUBLIC_KEY_ENTRY = "public_key.pem"
# The entries the signature itself cannot list: the manifest and its signature.
UNLISTED_ENTRIES = frozenset({MANIFEST_ENTRY, SIGNATURE_ENTRY})


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys, no insignificant whitespace and no floats.

    Floats are refused because their text form differs between JSON libraries, which
    would make the signed bytes hard to reproduce for a third-party producer.
    """
    _refuse_floats(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError(f"float {value!r} in canonical JSON; use integers")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def encode_signature(signature: bytes) -> bytes:
    """manifest.sig: the 64 signature bytes, standard base64 with padding, one newline."""
    return base64.b64encode(signature) + b"\n"


def decode_signature(data: bytes) -> bytes:
    """The raw signature from manifest.sig; ValueError when it is not 64 bytes of base64."""
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc
    if len(raw) != 64:
        raise ValueError(f"{len(raw)} bytes, an Ed25519 signature has 64")
    return raw
