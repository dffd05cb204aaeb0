"""The nvr error tree; every error nvr raises on purpose derives from NvrError.

    NvrError
    ├── ConfigError            the config file is missing, malformed or invalid
    ├── CameraError            one camera's stream failed; the supervisor retries it
    │   ├── CameraUnreachable  connect, DESCRIBE or read failed or timed out
    │   ├── CameraStalled      connected, but no packet arrived within the stall limit
    │   ├── CameraRefused      the camera answered with an RTSP error status (401, 404, 503)
    │   ├── CameraProtocolError  the camera's bytes are not valid RTSP, SDP or RTP
    │   └── StreamUnsupported  the stream has no video track nvr can store
    ├── StorageError           writing, fsyncing or renaming a segment file failed
    ├── MediaError             a segment file is truncated or not the fMP4 nvr expects
    ├── ObjectStoreError       S3 replication failed (issue 3, nvr.storage)
    │   ├── ObjectStoreUnavailable  unreachable, timed out, 5xx: the queue waits and retries
    │   ├── ObjectStoreRefused      credentials refused, bucket missing, lock unsupported
    │   └── ObjectRejected          this one object failed: bad digest, verification mismatch
    └── RequestError           an API request is invalid (mapped to a 4xx answer)
        ├── NotFound           unknown camera, or no recording in the range
        ├── Conflict           the stored data cannot serve a valid request
        └── BadRange           malformed time, end before start, range too long

Library errors are wrapped with ``raise ... from`` so the cause stays in the traceback.
"""


class NvrError(Exception):
    """Base of every error nvr raises on purpose."""


class ConfigError(NvrError):
    """The configuration is missing, malformed or fails validation."""


class CameraError(NvrError):
    """One camera's stream failed; recovery is a reconnect."""


class CameraUnreachable(CameraError):
    """Connecting to the camera, or reading from it, failed or timed out."""


class CameraStalled(CameraError):
    """The connection is up but no packet arrived within the stall limit."""


class CameraRefused(CameraError):
    """The camera answered a request with an RTSP error status (``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CameraProtocolError(CameraError):
    """What the camera sent is not valid RTSP, SDP or RTP; a reconnect may cure it."""


class StreamUnsupported(CameraError):
    """The stream carries no video track that nvr can store."""


class StorageError(NvrError):
    """A segment file could not be written, fsynced or renamed into place."""


class MediaError(NvrError):
    """A segment file is truncated or not the fragmented MP4 nvr writes."""


class RequestError(NvrError):
    """An API request is invalid; ``status`` is the HTTP status to answer with."""

    status = 400


class NotFound(RequestError):
    """The camera is unknown or the range holds no recording."""

    status = 404


class Conflict(RequestError):
    """The request is valid but the stored data cannot serve it (e.g. files damaged)."""

    status = 409


class BadRange(RequestError):
    """A time is malformed, the range is inverted, or it is too long."""

    status = 400


# --- S3 replication (issue 3) ---
class ObjectStoreError(NvrError):
    """Copying a segment to S3, or reading it back, failed."""


class ObjectStoreUnavailable(ObjectStoreError):
    """S3 is unreachable, too slow or answering 5xx; every upload waits and retries."""


class ObjectStoreRefused(ObjectStoreError):
    """S3 refuses the credentials, the bucket is missing or lacks Object Lock; a config
    problem, so every upload waits until a periodic check passes."""


class ObjectRejected(ObjectStoreError):
    """One object failed (bad digest, size or checksum mismatch); only it is retried."""


# --- end S3 replication ---
