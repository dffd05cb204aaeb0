from pathlib import Path

import pytest

from nvr.config import load_config, parse_config
from nvr.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "nvr.toml"

MINIMAL = """
[storage]
root = "/var/lib/nvr/segments"

[index]
url = "sqlite:////var/lib/nvr/index.db"

[http]
listen = "127.0.0.1:8080"

[recording]
segment_seconds = 60

[[groups]]
name = "general"
retention_days = 30

[[groups]]
name = "key-area"
retention_days = 90

[[cameras]]
id = "gate-east"
url = "rtsp://user:secret@192.0.2.10:554/stream1"
group = "key-area"
"""


def test_parse_config_issue_shape_loads_every_section() -> None:
    config = parse_config(MINIMAL)
    assert config.storage.root == Path("/var/lib/nvr/segments")
    assert config.http.port == 8080
    assert config.recording.segment_seconds == 60
    assert config.group("key-area").retention_days == 90
    assert config.cameras[0].group == "key-area"


def test_load_config_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert [camera.id for camera in config.cameras] == ["gate-east", "library-hall"]


def test_parse_config_without_groups_has_the_two_presets() -> None:
    config = parse_config("")
    assert {(g.name, g.retention_days) for g in config.groups} == {
        ("general", 30),
        ("key-area", 90),
    }


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[storage]\nrooot = 'x'\n", "storage.rooot: unknown key"),
        ("[recording]\nsegment_seconds = 0\n", "recording.segment_seconds"),
        ("[recording]\nsegment_seconds = 'ten'\n", "recording.segment_seconds"),
        ("[http]\nlisten = '8080'\n", "http.listen"),
        ("[[cameras]]\nid = 'a'\nurl = 'http://x/y'\n", "cameras.0.url"),
        ("[[cameras]]\nid = '../etc'\nurl = 'rtsp://x/y'\n", "cameras.0.id"),
        (
            "[[cameras]]\nid = 'a'\nurl = 'rtsp://x/y'\ngroup = 'nope'\n",
            "unknown group 'nope'",
        ),
        ("colour = 'blue'\n", "colour: unknown key"),
        # TOML types its values: no coercion of booleans, strings or dates
        ("[recording]\nsegment_seconds = true\n", "recording.segment_seconds"),
        ("[recording]\ncameras_per_worker = 2.5\n", "recording.cameras_per_worker"),
        ("[[cameras]]\nid = 'a'\nurl = 'rtsp://x/y'\nenabled = 'no'\n", "enabled"),
        ("[[groups]]\nname = 'g'\nretention_days = '30'\n", "groups.0.retention"),
        (
            "[[cameras]]\nid = 'a'\nurl = 'rtsp://x/y'\npassword_env = 2026-01-01\n",
            "cameras.0.password_env: a TOML date",
        ),
    ],
)
def test_parse_config_bad_value_names_the_key(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_config(text)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:Pa/ss@127.0.0.1:554/stream",
        "rtsp://admin:p@ss@127.0.0.1/stream",
        "rtsp://admin:pa#ss@127.0.0.1/stream",
        "rtsp://admin:pa ss@127.0.0.1/stream",
        "rtsp://127.0.0.1:99999/stream",
        "rtsp://127.0.0.1/x\\r\\nInjected: 1",  # TOML escapes: a real CR LF
    ],
)
def test_parse_config_camera_url_that_would_leak_or_break_refused(url: str) -> None:
    text = f'[[cameras]]\nid = "a"\nurl = "{url}"\n'
    with pytest.raises(ConfigError, match=r"cameras\.0\.url"):
        parse_config(text)


def test_parse_config_percent_encoded_password_accepted() -> None:
    config = parse_config(
        '[[cameras]]\nid = "a"\nurl = "rtsp://u:p%2Fa%40ss@h:554/s"\n'
    )
    assert config.cameras[0].url.endswith("@h:554/s")


def test_parse_config_whole_numbers_accepted_for_seconds() -> None:
    config = parse_config("[recording]\nsegment_seconds = 4\nstall_seconds = 2.5\n")

    assert config.recording.segment_seconds == 4.0
    assert config.recording.stall_seconds == 2.5


def test_parse_config_duplicate_camera_rejected() -> None:
    text = (
        "[[cameras]]\nid='a'\nurl='rtsp://h/1'\n[[cameras]]\nid='a'\nurl='rtsp://h/2'\n"
    )
    with pytest.raises(ConfigError, match="duplicate id 'a'"):
        parse_config(text)


def test_parse_config_broken_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[storage\n")


def test_load_config_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_parse_config_native_client_for_rtsps_camera_refused() -> None:
    text = MINIMAL.replace(
        'url = "rtsp://user:secret@192.0.2.10:554/stream1"',
        'url = "rtsps://192.0.2.10/stream1"\nrtsp_client = "native"',
    )

    with pytest.raises(ConfigError, match="rtsps"):
        parse_config(text)
