"""Object keys and Object Lock dates, both derived only from the segment's identity.

A key is ``{prefix}{camera_id}/{YYYY}/{MM}/{DD}/{camera_id}-{start_us}.mp4`` with the
date parts from the segment's UTC start, the same shape as the local layout. The key
depends on nothing but the camera and the start instant, so a retried or resumed upload
always lands on the same key (docs/storage.md).
"""

import base64
import hashlib
from datetime import UTC, datetime

US_PER_DAY = 86_400 * 1_000_000


def object_key(prefix: str, camera_id: str, start_us: int) -> str:
    """The object key of the segment of ``camera_id`` starting at ``start_us``."""
    day = datetime.fromtimestamp(start_us // 1_000_000, UTC)
    return f"{prefix}{camera_id}/{day:%Y/%m/%d}/{camera_id}-{start_us}.mp4"


def retain_until_us(end_us: int, retention_days: int) -> int:
    """Object Lock retain-until instant: the segment's end plus its group's retention."""
    return end_us + retention_days * US_PER_DAY


def sha256_base64(hex_digest: str) -> str:
    """The ``x-amz-checksum-sha256`` form (base64 of the raw digest) of a hex SHA-256."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def composite_sha256(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart object: SHA-256 over the parts' raw digests,
    base64, then ``-`` and the part count."""
    whole = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(whole).decode('ascii')}-{len(part_digests)}"
