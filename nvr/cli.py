"""The ``nvr`` command line."""

import sys
from pathlib import Path

import click

from nvr.auth.cli import token as token_commands
from nvr.config import Config, load_config
from nvr.errors import NvrError
from nvr.evidence.commands import audit_command, verify_command
from nvr.log import setup_logging
from nvr.retention.cli import retention_command


def _config(path: Path | None) -> Config:
    return Config() if path is None else load_config(path)


@click.group()
@click.version_option(package_name="nvr")
def main() -> None:
    """nvr: a network video recorder for RTSP cameras."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML config file; without it nvr records simulated cameras under ./var.",
)
@click.option("--log-level", default="INFO", show_default=True)
def serve(config_path: Path | None, log_level: str) -> None:
    """Record every configured camera and serve the playback API."""
    from nvr.server import serve as run_server

    setup_logging(log_level.upper())
    try:
        config = _config(config_path)
        run_server(config, log_level.upper())
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)


@main.command("check-config")
@click.argument("config_path", type=click.Path(path_type=Path))
def check_config(config_path: Path) -> None:
    """Validate a config file and print a summary."""
    try:
        config = load_config(config_path)
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"{config_path}: ok, {len(config.cameras)} camera(s), {len(config.groups)} group(s)"
    )


main.add_command(token_commands)  # nvr token create|list|revoke (issue 8)
main.add_command(verify_command)  # nvr verify PACKAGE (issue 5, offline)
main.add_command(audit_command)  # nvr audit --config --camera (issue 5)
main.add_command(retention_command)  # nvr retention plan (issue 4)
