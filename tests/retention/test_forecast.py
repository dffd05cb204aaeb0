from pathlib import Path

from nvr.retention.forecast import forecast
from tests.index.support import SECOND_US, T0_US

from .support import Store, make_store


def _store(tmp_path: Path) -> Store:
    store = make_store(tmp_path)
    store.add("cam2", 0, size=1000, start_s=0)
    now_s = 2 * 86_400
    store.add(
        "cam2", 1, size=3600, start_s=now_s - 1800, duration_s=600
    )  # in last hour
    store.add("cam1", 0, size=500, start_s=0)
    store.clock.now_us = T0_US + now_s * SECOND_US
    return store


def test_forecast_free_space_short_of_retention_warns_key_area(tmp_path: Path) -> None:
    store = _store(tmp_path)

    groups = {
        g.name: g
        for g in forecast(store.index, store.root, False, free_bytes=10 * 86_400)
    }

    key_area = groups["key-area"]
    assert key_area.ingest_bytes_per_s == 1.0
    assert key_area.free_days == 10.0
    assert round(key_area.days_recorded, 3) == 2.0
    assert key_area.bytes_local == 4600
    assert key_area.warning is not None and "90 days" in key_area.warning
    assert groups["general"].warning is None  # nothing recorded in the last hour


def test_forecast_enough_free_space_no_warning(tmp_path: Path) -> None:
    store = _store(tmp_path)

    groups = forecast(store.index, store.root, False, free_bytes=100 * 86_400)

    assert [g.warning for g in groups] == [None, None]
