"""Writing one evidence package: a stored (uncompressed) zip streamed from a clip plan.

Entries, in order: video.mp4 (the clip, streamed chunk by chunk, never whole in
memory), public_key.pem, manifest.json (canonical JSON naming every other file's size
and SHA-256), manifest.sig (Ed25519 over manifest.json's exact bytes).
"""

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvr.errors import StorageError
from nvr.evidence.format import (
    MANIFEST_ENTRY,
    PUBLIC_KEY_ENTRY,
    SIGNATURE_ENTRY,
    VIDEO_ENTRY,
    canonical_json,
    encode_signature,
)
from nvr.evidence.signing import public_key_pem
from nvr.export.manifest import PackedFile
from nvr.export.pieces import SegmentLocation
from nvr.timeutil import us_to_datetime

HASH_CHUNK_BYTES = 1024 * 1024

# Given the files written so far, returns the manifest dict to sign.
ManifestBuilder = Callable[[list[PackedFile]], dict[str, Any]]
# Called with the bytes of video written so far.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class PackageResult:
    path: Path
    size: int
    sha256: str
    manifest: dict[str, Any]


def write_package(
    path: Path,
    video_size: int,
    video_chunks: Iterable[bytes],
    build: ManifestBuilder,
    key: Ed25519PrivateKey,
    created_us: int,
    progress: Progress | None = None,
) -> PackageResult:
    """Writes the package to ``path`` durably (temp file, fsync, rename). Blocking.

    ``video_chunks`` must yield exactly ``video_size`` bytes.
    """
    partial = path.with_name(path.name + ".part")
    try:
        with zipfile.ZipFile(
            partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as archive:
            stamp = us_to_datetime(created_us).timetuple()[:6]
            video = _write_video(archive, video_size, video_chunks, stamp, progress)
            pem = public_key_pem(key.public_key())
            _write_entry(archive, PUBLIC_KEY_ENTRY, pem, stamp)
            files = [
                video,
                PackedFile(
                    PUBLIC_KEY_ENTRY,
                    len(pem),
                    hashlib.sha256(pem).hexdigest(),
                    "application/x-pem-file",
                ),
            ]
            manifest = build(files)
            manifest_bytes = canonical_json(manifest)
            _write_entry(archive, MANIFEST_ENTRY, manifest_bytes, stamp)
            _write_entry(
                archive,
                SIGNATURE_ENTRY,
                encode_signature(key.sign(manifest_bytes)),
                stamp,
            )
        _fsync(partial)
        os.replace(partial, path)
        _fsync(path.parent)
        size = path.stat().st_size
        digest = hash_file(path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the original error is the one to report
            partial.unlink(missing_ok=True)
        # the message reaches API clients: the file name, not the server's directories
        raise StorageError(
            f"cannot write package {path.name}: {exc.strerror or exc}"
        ) from exc
    return PackageResult(path, size, digest, manifest)


def _write_video(
    archive: zipfile.ZipFile,
    size: int,
    chunks: Iterable[bytes],
    stamp: tuple[int, ...],
    progress: Progress | None,
) -> PackedFile:
    info = zipfile.ZipInfo(VIDEO_ENTRY, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_STORED  # video does not compress
    info.file_size = size  # lets zipfile pick zip64 up front for a clip over 4 GiB
    digest = hashlib.sha256()
    written = 0
    with archive.open(info, "w") as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(written)
    if written != size:
        raise StorageError(f"clip yielded {written} bytes, its plan said {size}")
    return PackedFile(VIDEO_ENTRY, written, digest.hexdigest(), "video/mp4")


def _write_entry(
    archive: zipfile.ZipFile, name: str, data: bytes, stamp: tuple[int, ...]
) -> None:
    info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_STORED
    archive.writestr(info, data)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_location(location: SegmentLocation, progress: Progress | None = None) -> str:
    """SHA-256 (hex) of a segment wherever it lives: a local file or ranged reads. Blocking."""
    if isinstance(location, Path):
        return hash_file(location, progress)
    digest = hashlib.sha256()
    done = 0
    while done < location.size:
        chunk = location.read_range(done, min(HASH_CHUNK_BYTES, location.size - done))
        if not chunk:
            break
        digest.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)
    return digest.hexdigest()


def hash_file(path: Path, progress: Progress | None = None) -> str:
    """SHA-256 (hex) of a file, streamed; ``progress`` gets bytes hashed so far. Blocking."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done)
    return digest.hexdigest()
