"""The ``[s3]`` section and ``local_days``: defaults, bounds and cross-field rules."""

import pytest

from nvr.config import parse_config
from nvr.errors import ConfigError

ISSUE_EXAMPLE = """
[s3]
endpoint_url = "http://127.0.0.1:8333"
bucket = "nvr-archive"
region = "us-east-1"
object_lock = "off"

[[groups]]
name = "general"
retention_days = 30
local_days = 3
"""


def test_config_issue_example_parses_with_defaults() -> None:
    config = parse_config(ISSUE_EXAMPLE)

    assert config.s3 is not None
    assert (config.s3.bucket, config.s3.object_lock, config.s3.prefix) == (
        "nvr-archive",
        "off",
        "",
    )
    assert config.s3.access_key_id is None
    assert config.groups[0].local_days == 3


def test_config_without_s3_section_keeps_everything_local() -> None:
    config = parse_config("")

    assert config.s3 is None
    assert all(group.local_days is None for group in config.groups)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ISSUE_EXAMPLE.replace('"off"', '"strict"'), "s3.object_lock"),
        (ISSUE_EXAMPLE.replace("local_days = 3", "local_days = 31"), "local_days"),
        (
            ISSUE_EXAMPLE.replace('region = "us-east-1"', 'secret = "x"'),
            "s3.secret: unknown key",
        ),
        (
            ISSUE_EXAMPLE.replace('region = "us-east-1"', 'access_key_id = "k"'),
            "go together",
        ),
        (
            ISSUE_EXAMPLE.replace("http://127.0.0.1:8333", "ftp://host"),
            "s3.endpoint_url",
        ),
    ],
)
def test_config_bad_s3_settings_rejected_naming_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)
