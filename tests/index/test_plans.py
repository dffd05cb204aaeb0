"""The range queries use the (camera_id, start_us) indexes: no scan of a whole table."""

import pytest
from sqlalchemy import Select, text

from nvr.index import Index, open_index
from nvr.index.models import Gap, Segment
from nvr.index.queries import overlapping

from .support import CAMERAS, GROUPS, SECOND_US, T0_US, segment_event

HOUR_US = 3600 * SECOND_US


def _fill(index: Index) -> None:
    # two days of one-minute segments for two cameras, one run each
    for camera_id, run_id in (("cam1", "run-a"), ("cam2", "run-z")):
        for n in range(0, 2 * 24 * 60, 20):
            index.add_segment(
                segment_event(camera_id=camera_id, run_id=run_id, seq=n, start_s=60 * n)
            )


def _range_statements() -> list[Select[Segment] | Select[Gap]]:
    start_us = T0_US + 20 * HOUR_US
    return [
        overlapping(Segment, "cam1", start_us, start_us + HOUR_US),
        overlapping(Gap, "cam1", start_us, start_us + HOUR_US),
    ]


def test_overlapping_one_hour_sqlite_plan_searches_indexes(sqlite_url: str) -> None:
    index = open_index(sqlite_url)
    index.sync_groups_and_cameras(GROUPS, CAMERAS)
    _fill(index)
    try:
        with index.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            for statement in _range_statements():
                sql = str(
                    statement.compile(
                        dialect=index.engine.dialect,
                        compile_kwargs={"literal_binds": True},
                    )
                )
                plan = [
                    row[3]
                    for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
                ]
                assert plan, sql
                scans = [step for step in plan if step.startswith("SCAN")]
                searches = [step for step in plan if step.startswith("SEARCH")]
                assert scans == [], plan
                assert searches and all(
                    "USING" in step and "INDEX" in step for step in searches
                ), plan
    finally:
        index.close()


@pytest.mark.postgres
def test_overlapping_one_hour_postgres_plan_has_no_seq_scan(postgres_url: str) -> None:
    index = open_index(postgres_url)
    index.sync_groups_and_cameras(GROUPS, CAMERAS)
    _fill(index)
    try:
        with index.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            # Note: tiny tables make a seq scan cheapest; forbidding it shows whether an
            # index plan exists at all (if not, PostgreSQL still falls back to Seq Scan).
            connection.execute(text("SET enable_seqscan = off"))
            for statement in _range_statements():
                sql = str(
                    statement.compile(
                        dialect=index.engine.dialect,
                        compile_kwargs={"literal_binds": True},
                    )
                )
                plan = "\n".join(
                    row[0] for row in connection.execute(text(f"EXPLAIN {sql}"))
                )
                assert "Seq Scan" not in plan, plan
                assert "Index" in plan, plan
    finally:
        index.close()
