import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nvr.cli import main
from nvr.index.evidence import place_hold
from nvr.retention.sweeper import sweep
from nvr.timeutil import format_rfc3339
from tests.index.support import SECOND_US, T0_US

from .support import DAY_US, make_store


def test_retention_plan_json_lists_deletions_and_held_matches_sweep(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    for seq in range(3):
        store.add("cam1", seq)
        store.add("cam2", seq)
    place_hold(
        store.index,
        "cam1",
        T0_US + 70 * SECOND_US,
        T0_US + 80 * SECOND_US,
        "CASE-1",
        "fight",
        "olive",
    )
    config = tmp_path / "nvr.toml"
    config.write_text(
        f'[storage]\nroot = "{store.root}"\n[index]\n'
        f'url = "sqlite:///{tmp_path / "index.db"}"\n',
        encoding="utf-8",
    )
    at_us = T0_US + 40 * DAY_US

    result = CliRunner().invoke(
        main,
        [
            "retention",
            "plan",
            "--config",
            str(config),
            "--at",
            format_rfc3339(at_us),
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.output.splitlines()]
    assert [(i["camera"], i["action"], i["group"], i["tier"]) for i in items] == [
        ("cam1", "delete", "general", "local"),
        ("cam1", "spare", "general", "local"),
        ("cam1", "delete", "general", "local"),
    ]
    assert items[1]["holds"][0]["case_id"] == "CASE-1"
    assert "keeps 30 days" in items[0]["why"]
    assert len(store.files()) == 6  # the plan deleted nothing

    store.clock.now_us = at_us
    sweep(store.index, store.root, now_us=store.clock)
    deleted = {d.segment_id for d in store.index.deletions("cam1")}
    assert deleted == {i["segment"] for i in items if i["action"] == "delete"}


def test_retention_plan_text_summary_counts(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.add("cam2", 0, size=77)
    config = tmp_path / "nvr.toml"
    config.write_text(
        f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n', encoding="utf-8"
    )

    result = CliRunner().invoke(
        main,
        [
            "retention",
            "plan",
            "--config",
            str(config),
            "--at",
            format_rfc3339(T0_US + 91 * DAY_US),
        ],
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith("DELETE cam2 ")
    assert "deletes 1 segment(s), 77 bytes; spares 0 held" in result.output


def test_retention_plan_without_config_reads_the_embedded_default_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["retention", "plan"])

    assert result.exit_code == 0, result.output
    assert "deletes 0 segment(s)" in result.output
    assert (tmp_path / "var" / "index.db").exists()
