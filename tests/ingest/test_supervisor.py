"""How the supervisor spreads cameras over worker processes."""

from nvr.config import parse_config
from nvr.ingest.supervisor import plan_workers

BASE = """
[storage]
root = "/var/lib/nvr/segments"

[recording]
cameras_per_worker = 2
"""


def _config(*tables: str) -> str:
    return BASE + "".join(f"\n[[cameras]]\n{table}\n" for table in tables)


def test_plan_workers_cameras_split_by_client_rtsps_goes_to_ffmpeg() -> None:
    config = parse_config(
        _config(
            'id = "a"\nurl = "rtsp://192.0.2.1/s"',
            'id = "b"\nurl = "rtsps://192.0.2.2/s"',
            'id = "c"\nurl = "rtsp://192.0.2.3/s"\nrtsp_client = "ffmpeg"',
            'id = "d"\nurl = "rtsp://192.0.2.4/s"',
        )
    )

    workers = plan_workers(config, config.cameras)

    by_client = {w.client: sorted(w.camera_ids) for w in workers}
    assert by_client == {"native": ["a", "d"], "ffmpeg": ["b", "c"]}


def test_plan_workers_five_cameras_two_per_worker_three_even_shards() -> None:
    config = parse_config(
        _config(*(f'id = "c{i}"\nurl = "rtsp://192.0.2.{i}/s"' for i in range(5)))
    )

    workers = plan_workers(config, config.cameras)

    assert sorted(len(w.camera_ids) for w in workers) == [1, 2, 2]
    assert sorted(c for w in workers for c in w.camera_ids) == [
        f"c{i}" for i in range(5)
    ]
