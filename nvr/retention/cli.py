"""``nvr retention plan``: what a sweep at a given instant would delete, deleting nothing."""

import json
import sys
from pathlib import Path

import click

from nvr.errors import NvrError


@click.group("retention")
def retention_command() -> None:
    """Inspect retention policy."""


@retention_command.command("plan")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The server's TOML config (index URL); without it, the embedded default "
    "under ./var.",
)
@click.option("--at", "at", help="RFC 3339 instant of the sweep (default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def plan_command(config_path: Path | None, at: str | None, as_json: bool) -> None:
    """Print every segment a sweep at --at would delete and why, and the held ones it
    would spare. Reads the index only; nothing is deleted."""
    from nvr.config import Config, load_config
    from nvr.index.db import open_index
    from nvr.retention.plan import plan_sweep
    from nvr.timeutil import format_rfc3339, parse_rfc3339_us, wall_now_us

    try:
        config = (
            Config()
            if config_path is None
            else load_config(config_path, camera_passwords=False)
        )
        at_us = parse_rfc3339_us(at) if at else wall_now_us()
        index = open_index(config.index.url)
        try:
            counts = {"delete": 0, "spare": 0}
            total_bytes = 0
            for item in plan_sweep(index, at_us):
                counts[item.action] += 1
                total_bytes += item.segment.bytes if item.action == "delete" else 0
                if as_json:
                    click.echo(json.dumps(item.as_json(), sort_keys=True))
                    continue
                seg = item.segment
                click.echo(
                    f"{item.action.upper():<6} {seg.camera_id} "
                    f"{format_rfc3339(seg.start_us)} {format_rfc3339(seg.end_us)} "
                    f"group={seg.group} tier={seg.tier}: {item.why}"
                )
        finally:
            index.close()
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)
    if not as_json:
        click.echo(
            f"sweep at {format_rfc3339(at_us)}: deletes {counts['delete']} "
            f"segment(s), {total_bytes} bytes; spares {counts['spare']} held"
        )
