"""Segment file names and the durable file steps: fsync, rename into place, hash.

Layout (docs/design.md)::

    {root}/{camera_id}/partial/{start_us}-{run_id}-{seq}.mp4    being written
    {root}/{camera_id}/{YYYY}/{MM}/{DD}/{camera_id}-{start_us}.mp4    closed
    {root}/{camera_id}/quarantine/...    set aside

All functions block on disk I/O; async callers run them in a thread.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nvr.errors import StorageError
from nvr.timeutil import us_to_datetime

PARTIAL_DIR = "partial"
QUARANTINE_DIR = "quarantine"
_PARTIAL_NAME = re.compile(
    r"^(?P<start_us>\d+)-(?P<run_id>[A-Za-z0-9_.]+)-(?P<seq>\d+)\.mp4$"
)
_CLOSED_NAME = re.compile(r"^(?P<camera_id>.+)-(?P<start_us>\d+)\.mp4$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PartialName:
    """What a partial file's name records about its segment."""

    start_us: int  # provisional wall start known when the file was opened
    run_id: str
    seq: int


def partial_path(
    root: Path, camera_id: str, start_us: int, run_id: str, seq: int
) -> Path:
    return root / camera_id / PARTIAL_DIR / f"{start_us}-{run_id}-{seq}.mp4"


def parse_partial_name(name: str) -> PartialName | None:
    """The fields of a partial file name, or None if the name is not one nvr writes."""
    match = _PARTIAL_NAME.match(name)
    if match is None:
        return None
    return PartialName(int(match["start_us"]), match["run_id"], int(match["seq"]))


def closed_path(root: Path, camera_id: str, start_us: int) -> Path:
    """Where a closed segment lives; the date directories are its UTC start date."""
    day = us_to_datetime(start_us)
    return (
        root
        / camera_id
        / f"{day.year:04d}"
        / f"{day.month:02d}"
        / f"{day.day:02d}"
        / f"{camera_id}-{start_us}.mp4"
    )


def parse_closed_start_us(name: str, camera_id: str) -> int | None:
    """The start instant in a closed segment's file name, or None if not one of ours."""
    match = _CLOSED_NAME.match(name)
    if match is None or match["camera_id"] != camera_id:
        return None
    return int(match["start_us"])


def segment_file(root: Path, relative: str) -> Path:
    """The file of an indexed segment path, refused unless it stays inside ``root``.

    Paths in the index are written by the supervisor and always relative, but a row
    altered by hand (or a bug) must not make playback or export read outside storage.
    Note: a lexical check, so a symlink an administrator placed under ``root`` (a camera
    directory on another disk) still works.
    """
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise StorageError(f"segment path {relative!r} is not inside the storage root")
    return root.joinpath(*parts)


def fsync_dir(path: Path) -> None:
    """Makes a directory's entries (a create, rename or unlink in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """Creates ``path`` and missing parents, fsyncing each parent that gained an entry."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            pass  # another camera thread made it first; its entry is what we need
        fsync_dir(directory.parent)


def fsync_and_hash(path: Path) -> tuple[int, str]:
    """Fsyncs a file and returns (size in bytes, SHA-256 hex), reading it in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def rename_durable(source: Path, target: Path) -> None:
    """Renames ``source`` to ``target`` (never replacing a file) and fsyncs both dirs."""
    make_dirs_durable(target.parent)
    if target.exists():
        raise StorageError(f"refusing to replace existing segment {target}")
    os.rename(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


def quarantine(root: Path, camera_id: str, path: Path) -> Path:
    """Moves a file into the camera's quarantine directory durably; returns its new path."""
    target = root / camera_id / QUARANTINE_DIR / path.name
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f"{path.stem}.{suffix}{path.suffix}")
    rename_durable(path, target)
    return target
