"""The recorder's configuration: one TOML file loaded into validated models.

Unknown keys and bad values are rejected with a message naming the key. Every field
documents its unit and default; ``examples/nvr.toml`` is the annotated reference.
"""

import tomllib
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nvr.errors import ConfigError

# Camera ids become directory names, so they are restricted to a safe alphabet.
CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    root: Path = Field(
        Path("var/segments"), description="directory holding segment files"
    )


class IndexConfig(_Strict):
    url: str = Field("sqlite:///var/index.db", description="any SQLAlchemy URL")


class HttpConfig(_Strict):
    listen: str = Field("127.0.0.1:8080", description="host:port the API listens on")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class RecordingConfig(_Strict):
    segment_seconds: Annotated[float, Field(ge=1, le=3600)] = 60
    """A segment is cut at the first keyframe after this many seconds (default 60)."""
    stall_seconds: Annotated[float, Field(ge=1, le=300)] = 10
    """No packet for this long ends the run and reconnects (default 10)."""
    connect_timeout_seconds: Annotated[float, Field(ge=1, le=300)] = 10
    """Limit for the RTSP connect and DESCRIBE (default 10)."""
    backoff_initial_seconds: Annotated[float, Field(ge=0.1, le=60)] = 1
    """First reconnect delay; it doubles per failure, with jitter (default 1)."""
    backoff_max_seconds: Annotated[float, Field(ge=1, le=3600)] = 30
    """Cap on the reconnect delay (default 30)."""
    cameras_per_worker: Annotated[int, Field(ge=1, le=200)] = 25
    """Cameras recorded by one worker process (default 25)."""

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_initial_seconds")
        return self


class GroupConfig(_Strict):
    name: Annotated[str, Field(pattern=GROUP_NAME_PATTERN)]
    retention_days: Annotated[int, Field(ge=1, le=3650)]
    """Segments are kept at least this many days after they end."""


class CameraConfig(_Strict):
    id: Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]
    url: str
    """rtsp:// or rtsps:// URL; credentials in it are never logged or returned."""
    group: str = "general"
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise ValueError("must be an rtsp:// or rtsps:// URL with a host")
        return value


DEFAULT_GROUPS = (
    GroupConfig(name="general", retention_days=30),
    GroupConfig(name="key-area", retention_days=90),
)


class Config(_Strict):
    storage: StorageConfig = StorageConfig()
    index: IndexConfig = IndexConfig()
    http: HttpConfig = HttpConfig()
    recording: RecordingConfig = RecordingConfig()
    groups: tuple[GroupConfig, ...] = DEFAULT_GROUPS
    cameras: tuple[CameraConfig, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = [group.name for group in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("groups: names must be unique")
        ids = [camera.id for camera in self.cameras]
        duplicates = sorted({cid for cid in ids if ids.count(cid) > 1})
        if duplicates:
            raise ValueError(f"cameras: duplicate id {duplicates[0]!r}")
        for camera in self.cameras:
            if camera.group not in names:
                raise ValueError(
                    f"cameras.{camera.id}.group: unknown group {camera.group!r}"
                )
        return self

    def group(self, name: str) -> GroupConfig:
        return next(group for group in self.groups if group.name == name)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {item['msg']}")
    return "; ".join(lines)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parses and validates TOML text; raises ConfigError naming each bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def load_config(path: Path) -> Config:
    """Reads and validates the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    return parse_config(text, str(path))
