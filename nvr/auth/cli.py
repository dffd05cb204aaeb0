"""``nvr token create|list|revoke``: managing API tokens in the index."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from nvr.auth.permissions import Permission, Role
from nvr.auth.tokens import (
    TokenError,
    TokenInfo,
    create_token,
    list_tokens,
    revoke_token,
)
from nvr.config import Config, load_config
from nvr.errors import NvrError
from nvr.index.db import open_index
from nvr.index.repo import Index
from nvr.timeutil import format_rfc3339

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML config file naming the index; without it, the default ./var index.",
)


@contextmanager
def _index(config_path: Path | None) -> Iterator[tuple[Config, Index]]:
    """The config and its opened index; any NvrError exits with status 2."""
    try:
        config = (
            Config()
            if config_path is None
            else load_config(config_path, camera_passwords=False)
        )
        index = open_index(config.index.url)
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)
    try:
        yield config, index
    except NvrError as exc:
        click.echo(f"nvr: {exc}", err=True)
        sys.exit(2)
    finally:
        index.close()


def _names(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """Repeated or comma-separated option values; None when not given."""
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    return names or None


def _check_scope(
    config: Config, cameras: tuple[str, ...] | None, groups: tuple[str, ...] | None
) -> None:
    known_cameras = {camera.id for camera in config.cameras}
    for camera_id in cameras or ():
        if camera_id not in known_cameras:
            raise TokenError(f"--cameras: camera {camera_id!r} is not in the config")
    known_groups = {group.name for group in config.groups}
    for group in groups or ():
        if group not in known_groups:
            raise TokenError(f"--groups: group {group!r} is not in the config")


@click.group("token")
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@CONFIG_OPTION
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", required=True, help="Unique name; audit entries carry it.")
@click.option("--cameras", multiple=True, help="Limit to these camera ids (a,b,...).")
@click.option("--groups", multiple=True, help="Limit to cameras of these groups.")
@click.option(
    "--grant",
    multiple=True,
    type=click.Choice([p.value for p in Permission if p is not Permission.PUBLIC]),
    help="An extra permission beyond the role's, e.g. playback for an auditor.",
)
def create(
    config_path: Path | None,
    role: str,
    name: str,
    cameras: tuple[str, ...],
    groups: tuple[str, ...],
    grant: tuple[str, ...],
) -> None:
    """Create a token and print it once; only its hash is stored."""
    with _index(config_path) as (config, index):
        camera_scope, group_scope = _names(cameras), _names(groups)
        _check_scope(config, camera_scope, group_scope)
        bearer = create_token(
            index,
            name,
            Role(role),
            cameras=camera_scope,
            groups=group_scope,
            grants=frozenset(Permission(p) for p in grant),
        )
    click.echo(f"token {name!r} ({role}) created; it is shown only once:", err=True)
    click.echo(bearer)


def _row(info: TokenInfo) -> str:
    revoked = format_rfc3339(info.revoked_us) if info.revoked_us is not None else "-"
    role = info.role.value
    if info.grants:
        role += "+" + "+".join(sorted(info.grants))
    created = format_rfc3339(info.created_us)
    return f"{info.name:<24} {role:<18} {info.scope_text():<28} {created:<28} {revoked}"


@token.command("list")
@CONFIG_OPTION
def list_(config_path: Path | None) -> None:
    """List tokens: name, role, scope, created, revoked (never the secret)."""
    with _index(config_path) as (_, index):
        infos = list_tokens(index)
    header = f"{'NAME':<24} {'ROLE':<18} {'SCOPE':<28} {'CREATED':<28} REVOKED"
    click.echo(header)
    for info in infos:
        click.echo(_row(info))


@token.command("revoke")
@CONFIG_OPTION
@click.argument("name")
def revoke(config_path: Path | None, name: str) -> None:
    """Revoke the token NAME; it is refused from the next request on."""
    with _index(config_path) as (_, index):
        info = revoke_token(index, name)
    assert info.revoked_us is not None
    click.echo(f"token {name!r} revoked at {format_rfc3339(info.revoked_us)}")
