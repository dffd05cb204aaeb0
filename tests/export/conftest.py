"""Fixtures: segment files of one recording, generated once per session."""

from pathlib import Path

import pytest
from clip_media import WALL_T0_US, Recording, clip_sources, cut_segments


@pytest.fixture(scope="session")
def export_media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export-media")


@pytest.fixture(scope="session", params=["h264", "h265"])
def recording(request: pytest.FixtureRequest, export_media_dir: Path) -> Recording:
    """Three 12 s segments (36 s of one run) of the parametrized codec, with AAC."""
    codec: str = request.param
    paths = cut_segments(export_media_dir / codec, codec, seconds=36, segment_s=12)
    assert len(paths) == 3
    return Recording(codec, clip_sources(paths, WALL_T0_US), gop_us=1_000_000)
