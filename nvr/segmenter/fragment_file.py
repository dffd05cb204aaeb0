"""A segment file written one ready-made fragment at a time (the native recorder's writer).

The file is hashed as it is written, so closing it needs no second read: the procedure
of nvr.segmenter.finalize holds with steps 2 and 3 folded into the writes (the caller
knows the fragment table it wrote). Order on close: fsync the file, rename it to its
closed path, fsync both directories, and only then hand back the SegmentClosed.

Every method blocks on disk I/O; the native worker calls them on its I/O thread.
"""

import hashlib
import logging
import os
from pathlib import Path

from nvr.errors import StorageError
from nvr.ingest.events import SegmentClosed
from nvr.log import fields
from nvr.segmenter.files import closed_path, make_dirs_durable, rename_durable
from nvr.segmenter.finalize import SegmentIdentity, TrackFacts

log = logging.getLogger(__name__)


class FragmentFile:
    """One partial segment file: the init segment, then whole fragments appended."""

    def __init__(self, path: Path, init: bytes) -> None:
        self.path = path
        self._digest = hashlib.sha256()
        self.size = 0
        try:
            make_dirs_durable(path.parent)
            self._fd: int | None = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise StorageError(f"cannot create segment {path}: {exc.strerror}") from exc
        try:
            self.append([init])
        except StorageError:
            self.abandon()  # a full disk must not leak the descriptor (or the space)
            raise

    def append(self, chunks: list[bytes]) -> None:
        """Writes one fragment (moof, mdat header, sample data) at the end of the file.

        A failure may leave part of the fragment written; recovery cuts it off.
        """
        if self._fd is None:
            raise StorageError(f"segment {self.path} is already closed")
        try:
            _write_all(self._fd, chunks)
        except OSError as exc:
            raise StorageError(
                f"cannot write segment {self.path}: {exc.strerror}"
            ) from exc
        for chunk in chunks:
            self._digest.update(chunk)
            self.size += len(chunk)

    def close(
        self,
        root: Path,
        identity: SegmentIdentity,
        facts: TrackFacts,
        times: tuple[int, int],
        media: tuple[int, int, int],
        keyframes: tuple[tuple[int, int], ...],
    ) -> SegmentClosed:
        """Makes the file a closed segment; ``times`` is its (start_us, end_us) and
        ``media`` its (media_start, media_duration, timescale)."""
        if self._fd is None:
            raise StorageError(f"segment {self.path} is already closed")
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(
                f"cannot fsync segment {self.path}: {exc.strerror}"
            ) from exc
        finally:
            os.close(fd)
        start_us, end_us = times
        target = closed_path(root, identity.camera_id, start_us)
        try:
            rename_durable(self.path, target)
        except OSError as exc:
            raise StorageError(
                f"cannot move segment {self.path} into place: {exc.strerror}"
            ) from exc
        media_start, media_duration, timescale = media
        return SegmentClosed(
            camera_id=identity.camera_id,
            run_id=identity.run_id,
            seq=identity.seq,
            path=target.relative_to(root).as_posix(),
            start_us=start_us,
            end_us=end_us,
            media_start=media_start,
            media_duration=media_duration,
            timescale=timescale,
            bytes=self.size,
            sha256=self._digest.hexdigest(),
            video_codec=facts.video_codec,
            audio_codec=facts.audio_codec,
            width=facts.width,
            height=facts.height,
            keyframes=keyframes,
        )

    def abandon(self) -> None:
        """Closes the descriptor after a failure; the partial file stays for recovery."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        except OSError as exc:
            log.warning(
                "segment file close failed %s",
                fields(segment=self.path.name, error=exc),
            )


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """os.writev until every byte is written (a short write is not an error)."""
    views = [memoryview(chunk) for chunk in chunks if chunk]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + 1024])  # IOV_MAX on Linux
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]
