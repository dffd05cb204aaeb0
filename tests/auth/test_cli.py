"""``nvr token create|list|revoke`` through click, on a real SQLite index."""

from pathlib import Path

from click.testing import CliRunner

from nvr.auth.tokens import authenticate
from nvr.cli import main
from nvr.index import open_index


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "nvr.toml"
    path.write_text(
        f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n\n'
        '[[cameras]]\nid = "cam-a"\nurl = "rtsp://127.0.0.1:1/a"\n'
    )
    return path


def test_token_create_prints_token_once_which_authenticates(tmp_path: Path) -> None:
    config = _config(tmp_path)

    result = CliRunner().invoke(
        main,
        [
            "token",
            "create",
            "--config",
            str(config),
            "--role",
            "admin",
            "--name",
            "first-admin",
        ],
    )

    assert result.exit_code == 0, result.output
    bearer = result.stdout.strip()
    index = open_index(f"sqlite:///{tmp_path / 'index.db'}")
    try:
        info = authenticate(index, bearer)
    finally:
        index.close()
    assert info is not None and info.name == "first-admin"


def test_token_list_shows_name_role_scope_revoked_never_secret(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    runner = CliRunner()
    created = runner.invoke(
        main,
        [
            "token",
            "create",
            "--config",
            config,
            "--role",
            "viewer",
            "--name",
            "lobby",
            "--cameras",
            "cam-a",
        ],
    )
    revoked = runner.invoke(main, ["token", "revoke", "--config", config, "lobby"])

    listing = runner.invoke(main, ["token", "list", "--config", config])

    assert created.exit_code == revoked.exit_code == listing.exit_code == 0
    secret = created.stdout.strip().rsplit("_", 1)[-1]
    line = listing.stdout.splitlines()[1]
    assert line.split()[:3] == ["lobby", "viewer", "cameras=cam-a"]
    assert len(line.split()) == 5  # created and revoked times filled in
    assert secret not in listing.output
    assert created.stdout.strip()[4:20] not in listing.output  # not even the id part


def test_token_revoke_unknown_name_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["token", "revoke", "--config", str(_config(tmp_path)), "nobody"]
    )

    assert result.exit_code == 2
    assert "no token named 'nobody'" in result.output


def test_token_create_scope_unknown_camera_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "token",
            "create",
            "--config",
            str(_config(tmp_path)),
            "--role",
            "viewer",
            "--name",
            "v",
            "--cameras",
            "cam-zz",
        ],
    )

    assert result.exit_code == 2
    assert "cam-zz" in result.output


def test_token_create_without_camera_secrets_in_environment(tmp_path: Path) -> None:
    # the admin creating a token need not hold the recorder's camera passwords
    config = tmp_path / "nvr.toml"
    config.write_text(
        f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n\n'
        '[[cameras]]\nid = "cam-a"\nurl = "rtsp://admin@127.0.0.1:1/a"\n'
        'password_env = "NVR_TEST_UNSET_CAMERA_PASSWORD"\n'
    )
    args = ["token", "create", "--config", str(config), "--role", "viewer"]

    result = CliRunner().invoke(main, [*args, "--name", "v"], env={})

    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
