"""Fixtures: segment media cut once per session; a fresh archive (files + index) per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Archive, build_archive, cut_segments


@pytest.fixture(scope="session")
def evidence_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    base = tmp_path_factory.mktemp("evidence-media")
    run_a = cut_segments(base / "a", seconds=12, segment_s=4, offset_s=0)
    run_b = cut_segments(base / "b", seconds=8, segment_s=4, offset_s=20)
    assert (len(run_a), len(run_b)) == (3, 2)
    return {"a": run_a, "b": run_b}


@pytest.fixture
def archive(tmp_path: Path, evidence_media: dict[str, list[Path]]) -> Iterator[Archive]:
    built = build_archive(tmp_path, evidence_media)
    yield built
    built.index.close()
