"""The recorder's configuration: one TOML file loaded into validated models.

Unknown keys and bad values are rejected with a message naming the key. Every field
documents its unit and default; ``examples/nvr.toml`` is the annotated reference.
"""

import datetime
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nvr.errors import ConfigError

# Camera ids become directory names, so they are restricted to a safe alphabet.
CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# The characters RFC 3986 (3.2.1) allows in a URL's userinfo; anything else is encoded.
_USERINFO = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:%-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    root: Path = Field(
        Path("var/segments"), description="directory holding segment files"
    )
    # retention (issue 4): disk pressure marks, see docs/retention.md
    high_water_percent: Annotated[float, Field(gt=0, le=100)] = 90
    """Above this share of the disk in use, space is freed (default 90)."""
    low_water_percent: Annotated[float, Field(gt=0, le=100)] = 80
    """Freeing space stops once usage is back under this share (default 80)."""

    @model_validator(mode="after")
    def _water_marks(self) -> Self:
        if self.low_water_percent >= self.high_water_percent:
            raise ValueError("low_water_percent must be below high_water_percent")
        return self


class IndexConfig(_Strict):
    url: str = Field("sqlite:///var/index.db", description="any SQLAlchemy URL")


class HttpConfig(_Strict):
    listen: str = Field("127.0.0.1:8080", description="host:port the API listens on")
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain; with tls_key the API serves HTTPS only",
    )
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert")

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        for key, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if path is not None and not path.is_file():
                raise ValueError(f"{key}: no such file {str(path)!r}")
        return self

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


RtspClient = Literal["native", "ffmpeg"]


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
    cameras_per_worker: Annotated[int, Field(ge=1, le=500)] = 25
    """Cameras recorded by one worker process (default 25)."""
    rtsp_client: RtspClient = "native"
    """How cameras are read: "native", nvr's own RTSP/RTP client on asyncio (the
    default; the cheapest per stream), or "ffmpeg", FFmpeg's demuxer through PyAV with
    one thread per camera. A camera may override it."""

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_initial_seconds")
        return self


class GroupConfig(_Strict):
    name: Annotated[str, Field(pattern=GROUP_NAME_PATTERN)]
    retention_days: Annotated[int, Field(ge=1, le=3650)]
    """Segments are kept at least this many days after they end."""
    local_days: Annotated[float | None, Field(ge=0, le=3650)] = None
    """With ``[s3]`` set, a replicated segment's local copy is removed this many days
    after the segment ends; unreplicated segments are never evicted. None (default)
    keeps local copies until retention."""
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    """Under disk pressure, groups of lower priority lose their oldest segments first
    (default 0; the preset key-area has 10)."""

    @model_validator(mode="after")
    def _local_within_retention(self) -> Self:
        if self.local_days is not None and self.local_days > self.retention_days:
            raise ValueError("local_days must be <= retention_days")
        return self


def read_secret(key: str, env_name: str | None, file_path: Path | None) -> str | None:
    """A secret named by an environment variable or held in a file, else None.

    Errors name the variable or file, never the value. A file's trailing newline is
    dropped. Meant for every secret in the config (camera passwords, S3 keys).
    """
    if env_name is not None and file_path is not None:
        raise ValueError(f"{key}_env and {key}_file are exclusive: set one")
    if env_name is not None:
        value = os.environ.get(env_name)
        if not value:
            raise ValueError(f"{key}_env: environment variable {env_name!r} is not set")
        return value
    if file_path is not None:
        try:
            value = file_path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"{key}_file: cannot read {str(file_path)!r}") from exc
        if not value:
            raise ValueError(f"{key}_file: {str(file_path)!r} is empty")
        return value
    return None


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set for the user it already names."""
    parts = urlsplit(url)
    if parts.username is None:
        raise ValueError(
            "url must name the user (rtsp://user@host/...) to add a password"
        )
    if parts.password == quote(password, safe=""):
        return url  # already resolved, e.g. a model validated twice
    if parts.password is not None:
        raise ValueError("url already holds a password; drop it or password_env/_file")
    netloc = (
        f"{parts.username}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class CameraConfig(_Strict):
    id: Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]
    url: str = Field(repr=False)
    """rtsp:// or rtsps:// URL; credentials in it are never logged or returned."""
    group: str = "general"
    enabled: bool = True
    password_env: str | None = None
    """Environment variable holding the camera password, put into ``url`` at load."""
    password_file: Path | None = None
    """File holding the camera password (e.g. a systemd or Docker secret)."""
    rtsp_client: RtspClient | None = None
    """Overrides ``[recording] rtsp_client`` for this camera (default: unset; an
    rtsps:// camera is read by "ffmpeg", as the native client speaks no TLS)."""

    def client(self, default: RtspClient) -> RtspClient:
        """The RTSP client that records this camera."""
        if self.rtsp_client is not None:
            return self.rtsp_client
        return "ffmpeg" if urlsplit(self.url).scheme == "rtsps" else default

    @model_validator(mode="after")
    def _native_speaks_no_tls(self) -> Self:
        if self.rtsp_client == "native" and urlsplit(self.url).scheme == "rtsps":
            raise ValueError(
                'rtsp_client = "native" cannot read rtsps:// (no TLS); '
                'use "ffmpeg" or leave rtsp_client unset'
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _resolve_password(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        if (info.context or {}).get("camera_passwords") is False:
            return data  # an admin tool that never connects to cameras
        env_name, file_name = data.get("password_env"), data.get("password_file")
        file_path = Path(file_name) if isinstance(file_name, str | Path) else None
        password = read_secret(
            "password", env_name if isinstance(env_name, str) else None, file_path
        )
        if password is None:
            return data
        return {**data, "url": _with_password(data["url"], password)}

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise ValueError("must be an rtsp:// or rtsps:// URL with a host")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from exc
        # An unencoded '/', '?', '#' or '@' in a password makes the URL split in the
        # wrong place: the password would be taken for a host or path, and leak.
        userinfo = parts.netloc.rpartition("@")[0]
        if "@" in parts.path + parts.query + parts.fragment or not _USERINFO.match(
            userinfo
        ):
            raise ValueError(
                "user or password has characters that must be percent-encoded "
                "('/' as %2F, '@' as %40, ...), or use password_env / password_file"
            )
        return value


# --- S3 replication (issue 3) ---
class S3Config(_Strict):
    """``[s3]``: every closed segment is copied to this bucket (see docs/storage.md).

    Credentials come from the standard AWS chain (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws/credentials``); the two key
    fields below exist only for users who insist on plain text in this file.
    """

    endpoint_url: str | None = None
    """http(s) URL of an S3-compatible server; None (default) means AWS itself."""
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    region: str = "us-east-1"
    object_lock: Literal["off", "governance", "compliance"] = "off"
    """Object Lock mode for every object written; its retain-until date is the segment's
    end plus its group's retention_days. Not "off" requires a bucket with Object Lock."""
    prefix: Annotated[str, Field(pattern=r"^([a-z0-9][a-z0-9._-]*/)*$")] = ""
    """Prepended to every object key, e.g. "site-a/" (default empty)."""
    upload_concurrency: Annotated[int, Field(ge=1, le=32)] = 2
    """Segments uploaded at once (default 2)."""
    multipart_threshold_mb: Annotated[int, Field(ge=5, le=5000)] = 64
    """Segments at least this large go up in parts (default 64 MiB)."""
    part_size_mb: Annotated[int, Field(ge=5, le=5000)] = 16
    """Size of each part of a multipart upload (default 16 MiB; S3's minimum is 5)."""
    request_timeout_seconds: Annotated[float, Field(ge=1, le=600)] = 30
    """Connect and read timeout of one S3 request (default 30)."""
    retry_max_seconds: Annotated[float, Field(ge=1, le=3600)] = 60
    """Cap on the delay between retries while S3 fails; it doubles from 1 s (default 60)."""
    access_key_id: str | None = None
    """Discouraged: prefer the AWS environment variables or credentials file."""
    secret_access_key: str | None = None
    """Discouraged: prefer the AWS environment variables or credentials file."""

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _keys_together(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        return self


# --- end S3 replication ---


DEFAULT_GROUPS = (
    GroupConfig(name="general", retention_days=30),
    GroupConfig(name="key-area", retention_days=90, priority=10),
)


class Config(_Strict):
    storage: StorageConfig = StorageConfig()
    index: IndexConfig = IndexConfig()
    http: HttpConfig = HttpConfig()
    recording: RecordingConfig = RecordingConfig()
    groups: tuple[GroupConfig, ...] = DEFAULT_GROUPS
    cameras: tuple[CameraConfig, ...] = ()
    s3: S3Config | None = (
        None  # issue 3: replication to S3; None keeps everything local
    )

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


def parse_config(
    text: str, source: str = "<config>", *, camera_passwords: bool = True
) -> Config:
    """Parses and validates TOML text; raises ConfigError naming each bad key.

    ``camera_passwords=False`` leaves each camera's ``password_env``/``password_file``
    unread, for tools that only need the index or storage (tokens, retention plans):
    an operator can run them without the recorder's camera secrets.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    dated = _first_date(raw)
    if dated is not None:
        raise ConfigError(f"{source}: {dated}: a TOML date or time is not valid here")
    try:
        # Strict JSON mode: TOML already types its values, so `true` is not 1 second and
        # "no" is not False; JSON mode still takes strings for paths and lists for tuples.
        return Config.model_validate_json(
            json.dumps(raw),
            strict=True,
            context={"camera_passwords": camera_passwords},
        )
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc


def _first_date(value: Any, key: str = "") -> str | None:
    """The key of the first TOML date/time value, which no setting takes, else None."""
    if isinstance(value, datetime.date | datetime.time):
        return key or "(top level)"
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        children = [(f"{key}.{k}" if key else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{key}.{i}", v) for i, v in enumerate(value)]
    for child_key, child in children:
        found = _first_date(child, child_key)
        if found is not None:
            return found
    return None


def load_config(path: Path, *, camera_passwords: bool = True) -> Config:
    """Reads and validates the TOML file at ``path`` (see ``parse_config``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    return parse_config(text, str(path), camera_passwords=camera_passwords)
