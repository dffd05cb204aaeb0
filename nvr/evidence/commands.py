"""``nvr verify`` (offline, package only) and ``nvr audit`` (the archive, via the index).

``verify`` imports nothing of the index or the HTTP server, so it runs on an auditor's
machine with only the package and, ideally, the public key they trust.
"""

import sys
from pathlib import Path

import click

from nvr.errors import NvrError
from nvr.evidence.verify import VerifyReport, verify_package

# Below this many bytes to hash, no progress lines are printed.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
PROGRESS_STEP_PERCENT = 10


class _ProgressPrinter:
    """Prints "hashing: 40%" to stderr at each 10 % step of a large package."""

    def __init__(self) -> None:
        self._next_percent = PROGRESS_STEP_PERCENT

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES:
            return
        percent = done * 100 // total
        if percent >= self._next_percent:
            click.echo(f"hashing: {percent}% of {total} bytes", err=True)
            self._next_percent = (
                percent // PROGRESS_STEP_PERCENT + 1
            ) * PROGRESS_STEP_PERCENT


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (\\x1b, \\r, \\u202e): names
    come from the package, and a terminal escape in one could redraw a FAIL as PASS."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def print_report(report: VerifyReport) -> None:
    names = [printable(check.name) for check in report.checks]
    width = max(len(name) for name in names)
    for name, check in zip(names, report.checks, strict=True):
        mark = "PASS" if check.passed else "FAIL"
        click.echo(f"{mark}  {name:<{width}}  {printable(check.detail)}")
    verdict = "PASS" if report.passed else "FAIL"
    click.echo(f"result: {verdict} (key: {report.key_source or 'none usable'})")


@click.command("verify")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key you trust; without it the package's own key is used, "
    "which shows integrity but not origin.",
)
def verify_command(package: Path, key_path: Path | None) -> None:
    """Check an evidence package offline: signature, key and every file's SHA-256.

    Exit status 0 only when every check passes, 1 when any fails.
    """
    trusted = key_path.read_bytes() if key_path is not None else None
    report = verify_package(package, trusted, _ProgressPrinter())
    print_report(report)
    sys.exit(0 if report.passed else 1)


@click.command("audit")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The server's TOML config (index URL, storage root and, for segments "
    "evicted to S3, the [s3] section); without it, the embedded default under ./var.",
)
@click.option("--camera", "camera_id", required=True, help="Camera id to audit.")
@click.option("--start", help="RFC 3339; re-hash only segments ending after it.")
@click.option("--end", help="RFC 3339; re-hash only segments starting before it.")
def audit_command(
    config_path: Path | None, camera_id: str, start: str | None, end: str | None
) -> None:
    """Walk a camera's segment hash chain and re-hash its segments.

    Each segment is read where it lives: its local file, else its S3 object (evicted
    segments; needs the config's [s3] section and AWS credentials in the environment).
    Reports altered segments, missing ones and breaks in the chain, segment by segment;
    deletions logged by retention are explained, not reported. Also checks the audit
    log's chain. Exit status 0 only when clean, 1 with findings, 2 on errors.
    """
    from nvr.config import Config, load_config
    from nvr.evidence.archive import Finding, audit_archive
    from nvr.index.db import open_index
    from nvr.storage.s3 import S3Store
    from nvr.timeutil import format_rfc3339, parse_rfc3339_us

    def show(finding: Finding) -> None:
        record = finding.record
        click.echo(
            f"{finding.kind.upper()}  segment {record.segment_id} {record.path} "
            f"[{format_rfc3339(record.start_us)}, {format_rfc3339(record.end_us)}): "
            f"{finding.detail}"
        )

    try:
        config = Config() if config_path is None else load_config(config_path)
        start_us = parse_rfc3339_us(start) if start else None
        end_us = parse_rfc3339_us(end) if end else None
        # Evicted segments are read back from S3; credentials come from the standard AWS
        # chain (environment, credentials file) as for ``nvr serve``.
        store = S3Store(config.s3) if config.s3 is not None else None
        index = open_index(config.index.url)
        try:
            result = audit_archive(
                index,
                Path(config.storage.root),
                camera_id,
                start_us,
                end_us,
                show,
                store,
            )
        finally:
            index.close()
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)

    for line in result.audit_breaks:
        click.echo(f"AUDIT-LOG  {line}")
    counts = {
        kind: sum(1 for f in result.findings if f.kind == kind)
        for kind in ("altered", "missing", "chain-break", "unverified")
    }
    click.echo(
        f"camera {camera_id}: {result.records} chain records, {result.hashed} files "
        f"re-hashed, {result.deleted} deleted by logged deletions (explained); "
        f"{counts['altered']} altered, {counts['missing']} missing, "
        f"{counts['chain-break']} chain breaks, {counts['unverified']} unverified "
        "(evicted, no [s3] configured)"
    )
    click.echo(
        f"audit log: {result.audit_rows} rows, {len(result.audit_breaks)} breaks"
    )
    click.echo(f"result: {'CLEAN' if result.clean else 'FINDINGS'}")
    sys.exit(0 if result.clean else 1)
