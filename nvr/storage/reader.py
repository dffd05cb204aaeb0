"""Reading a segment from whichever tier holds it: the local file, else S3.

A ``TieredSegment`` is a ``nvr.export.pieces.RangeReader``: clip planning and serving
read it by byte ranges. Each read tries the local file first and falls back to ranged
GETs of the object when the file is gone, so a segment evicted while a clip of it is
being served keeps playing. Blocking: read from a worker thread.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from nvr.storage.s3 import S3Store


@dataclass(frozen=True)
class TieredSegment:
    """One segment: ``local_path`` if present, else ``key`` in the store's bucket."""

    local_path: Path
    key: str
    size: int
    store: S3Store = field(compare=False, repr=False)

    def read_range(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only at the end). Blocking."""
        length = max(0, min(length, self.size - offset))
        try:
            descriptor = os.open(self.local_path, os.O_RDONLY)
        except FileNotFoundError:
            return self.store.read_range(self.key, offset, length)
        try:
            return os.pread(descriptor, length, offset)
        finally:
            os.close(descriptor)

    def __str__(self) -> str:
        return f"{self.local_path} (or s3://{self.store.bucket}/{self.key})"


@dataclass(frozen=True)
class ObjectSegment:
    """One segment read only from S3 (``key`` in the store's bucket), by ranged GETs.

    For checks that must read the S3 copy itself (the archive audit), never the local file.
    """

    key: str
    size: int
    store: S3Store = field(compare=False, repr=False)

    def read_range(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` by one ranged GET. Blocking."""
        return self.store.read_range(
            self.key, offset, max(0, min(length, self.size - offset))
        )

    def __str__(self) -> str:
        return f"s3://{self.store.bucket}/{self.key}"
