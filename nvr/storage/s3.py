"""The S3 client nvr uses: one boto3 client, each call blocking and error-classified.

boto3 is synchronous: every method here blocks and must be called from a worker thread
(``asyncio.to_thread`` or an executor), never from the event loop. botocore clients are
thread-safe, so one client serves uploads and playback reads alike.

Every failure is raised as one of the ``ObjectStoreError`` kinds: ``Unavailable``
(network, timeout, 5xx: retry later), ``Refused`` (credentials, missing bucket, no
Object Lock: a config problem) or ``Rejected`` (this object only: bad digest).
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import boto3  # type: ignore[import-untyped]
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from nvr.config import S3Config
from nvr.errors import (
    ObjectRejected,
    ObjectStoreError,
    ObjectStoreRefused,
    ObjectStoreUnavailable,
)
from nvr.log import redact_text, redact_url

log = logging.getLogger(__name__)

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]

# S3 takes at most 1000 keys in one DeleteObjects request.
DELETE_OBJECTS_MAX = 1000

# Small reads (box headers, moofs) are cached: planning a clip reads the same few
# hundred bytes of a segment several times, and each read would be one GET.
SMALL_READ_BYTES = 64 * 1024
SMALL_READ_CACHE_ENTRIES = 512

_RETRYABLE_CODES = {
    "SlowDown",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
    "Throttling",
    "RequestTimeTooSkewed",
}
_REFUSING_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "NoSuchBucket",
    "InvalidToken",
    "ExpiredToken",
    "403",
}


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head_object`` says about a stored object."""

    size: int
    checksum_sha256: str | None  # base64, with "-N" for a multipart object
    version_id: str | None
    lock_mode: str | None
    retain_until_us: int | None


class S3Store:
    """The configured bucket. Blocking: call every method from a worker thread."""

    def __init__(self, config: S3Config, client: Any | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.where = (
            f"bucket {config.bucket} at {redact_url(config.endpoint_url or 'AWS')}"
        )
        self._client = client if client is not None else make_client(config)
        self._small_reads: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._small_lock = threading.Lock()

    # startup check

    def check_bucket(self, require_lock: bool) -> None:
        """Raises ObjectStoreRefused unless the bucket exists, the credentials work and,
        when ``require_lock``, the bucket has Object Lock enabled. Blocking."""
        self._call("check the bucket", self._client.head_bucket, Bucket=self.bucket)
        if not require_lock:
            return
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "ObjectLockConfigurationNotFoundError":
                answer = {}
            else:
                raise _classify(
                    exc, "read the Object Lock configuration", self.where
                ) from exc
        except BotoCoreError as exc:
            raise _classify(
                exc, "read the Object Lock configuration", self.where
            ) from exc
        enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise ObjectStoreRefused(
                f"{self.where} has no Object Lock, but s3.object_lock = "
                f"{self.config.object_lock!r}: create the bucket with Object Lock enabled "
                'or set object_lock = "off"'
            )

    # writing

    def put(
        self,
        key: str,
        body: bytes,
        checksum_sha256: str,
        lock: tuple[LockMode, int] | None,
    ) -> None:
        """Stores ``body`` in one request; the server rejects it unless its SHA-256 is
        ``checksum_sha256`` (base64). ``lock`` is (mode, retain-until µs). Blocking."""
        self._call(
            "upload",
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum_sha256,
            ContentType="video/mp4",
            **_lock_args(lock),
        )

    def create_multipart(self, key: str, lock: tuple[LockMode, int] | None) -> str:
        """Starts a multipart upload with SHA-256 part checksums; returns its id."""
        answer = self._call(
            "start a multipart upload",
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ChecksumAlgorithm="SHA256",
            ContentType="video/mp4",
            **_lock_args(lock),
        )
        return str(answer["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes, checksum_sha256: str
    ) -> str:
        """Uploads part ``number`` (from 1), checked by the server; returns its ETag."""
        answer = self._call(
            "upload a part",
            self._client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum_sha256,
        )
        return str(answer["ETag"])

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str, str]]
    ) -> None:
        """Completes the upload from (number, etag, checksum) of every part."""
        listed = [
            {"PartNumber": n, "ETag": etag, "ChecksumSHA256": checksum}
            for n, etag, checksum in parts
        ]
        self._call(
            "complete a multipart upload",
            self._client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drops an unfinished multipart upload; one already gone is not an error."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except ClientError as exc:
            if _code(exc) in ("NoSuchUpload", "404"):
                return
            raise _classify(exc, "abort a multipart upload", self.where) from exc
        except BotoCoreError as exc:
            raise _classify(exc, "abort a multipart upload", self.where) from exc

    def delete(self, key: str, version_id: str | None = None) -> None:
        """Deletes the object (or one version); S3 refuses while its lock holds."""
        extra = {} if version_id is None else {"VersionId": version_id}
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _code(exc) == "AccessDenied" and version_id is not None:
                # Deleting a locked version is refused with 403 (S3 Object Lock).
                raise ObjectRejected(
                    f"cannot delete {key} version {version_id}: "
                    "its Object Lock has not expired"
                ) from exc
            raise _classify(exc, "delete", self.where) from exc
        except BotoCoreError as exc:
            raise _classify(exc, "delete", self.where) from exc

    def delete_many(
        self, objects: Sequence[tuple[str, str | None]]
    ) -> dict[str, ObjectStoreError]:
        """Deletes up to 1000 objects (key, version id or None) in one ``DeleteObjects``
        request. S3 answers per object: returns, by key, those it did not delete and
        why (``ObjectRejected`` for a version its Object Lock still holds). An object
        already gone counts as deleted. A request failing as a whole raises. Blocking."""
        if not objects:
            return {}
        if len(objects) > DELETE_OBJECTS_MAX:
            raise ValueError(f"at most {DELETE_OBJECTS_MAX} objects per request")
        listed = [
            {"Key": key}
            if version_id is None
            else {"Key": key, "VersionId": version_id}
            for key, version_id in objects
        ]
        answer = self._call(
            "delete objects",
            self._client.delete_objects,
            Bucket=self.bucket,
            Delete={"Objects": listed, "Quiet": True},
        )
        asked = dict(objects)
        failed: dict[str, ObjectStoreError] = {}
        for error in answer.get("Errors", []):
            key = str(error.get("Key", ""))
            if key not in asked:
                continue
            refusal = self._object_error(
                key,
                asked[key],
                str(error.get("Code", "")),
                str(error.get("Message", "")),
            )
            if refusal is not None:
                failed[key] = refusal
        return failed

    def _object_error(
        self, key: str, version_id: str | None, code: str, message: str
    ) -> ObjectStoreError | None:
        """The error kind of one object in a ``DeleteObjects`` answer; None: gone."""
        if code in ("NoSuchKey", "NoSuchVersion"):
            return None
        if code == "AccessDenied" and version_id is not None:
            # Deleting a locked version is refused with AccessDenied (S3 Object Lock).
            return ObjectRejected(
                f"cannot delete {key} version {version_id}: "
                "its Object Lock has not expired"
            )
        detail = f"{code}: {message}".strip(": ")
        if code in _RETRYABLE_CODES:
            return ObjectStoreUnavailable(
                f"cannot delete {key}: {self.where} answered {detail}"
            )
        if code in _REFUSING_CODES:
            return ObjectStoreRefused(
                f"cannot delete {key}: {self.where} refused the request ({detail})"
            )
        return ObjectRejected(
            f"cannot delete {key}: {self.where} rejected it ({detail})"
        )

    # reading

    def head(self, key: str) -> ObjectInfo | None:
        """Size, checksum and lock of the object, or None if there is none. Blocking."""
        try:
            answer = self._client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _classify(exc, "check an object", self.where) from exc
        except BotoCoreError as exc:
            raise _classify(exc, "check an object", self.where) from exc
        until = answer.get("ObjectLockRetainUntilDate")
        return ObjectInfo(
            size=int(answer["ContentLength"]),
            checksum_sha256=answer.get("ChecksumSHA256"),
            version_id=answer.get("VersionId"),
            lock_mode=answer.get("ObjectLockMode"),
            retain_until_us=None if until is None else _datetime_us(until),
        )

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the object from ``offset`` by one ranged GET. Blocking."""
        if length <= 0:
            return b""
        small = length <= SMALL_READ_BYTES
        cache_key = (key, offset, length)
        if small:
            with self._small_lock:
                cached = self._small_reads.get(cache_key)
                if cached is not None:
                    self._small_reads.move_to_end(cache_key)
                    return cached
        answer = self._call(
            "read",
            self._client.get_object,
            Bucket=self.bucket,
            Key=key,
            Range=f"bytes={offset}-{offset + length - 1}",
        )
        try:
            data = bytes(answer["Body"].read())
        except BotoCoreError as exc:
            raise _classify(exc, "read", self.where) from exc
        if small:
            with self._small_lock:
                self._small_reads[cache_key] = data
                if len(self._small_reads) > SMALL_READ_CACHE_ENTRIES:
                    self._small_reads.popitem(last=False)
        return data

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, what, self.where) from exc


def make_client(config: S3Config) -> Any:
    """A boto3 S3 client for ``config``; credentials from the AWS chain unless the
    config holds keys. Built once: creating a client costs tens of milliseconds."""
    if config.access_key_id is not None:
        log.warning(
            "s3 keys read from the config file; prefer AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or the AWS credentials file"
        )
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
    )
    timeout_s = config.request_timeout_seconds
    boto_config = BotoConfig(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        # Note: botocore retries a failed request once more itself; longer outages are
        # handled by the uploader's own backoff, which keeps the queue state visible.
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=config.upload_concurrency + 10,
        # The checksums nvr sends are explicit; no extra CRC32 on every request, and no
        # whole-object validation of ranged GETs (impossible for a part of an object).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path" if config.endpoint_url else "auto"},
    )
    return session.client("s3", endpoint_url=config.endpoint_url, config=boto_config)


def _lock_args(lock: tuple[LockMode, int] | None) -> dict[str, Any]:
    if lock is None:
        return {}
    mode, until_us = lock
    until = datetime.fromtimestamp(until_us / 1_000_000, UTC)
    return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}


def _datetime_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _classify(
    exc: ClientError | BotoCoreError, what: str, where: str
) -> ObjectStoreError:
    """The ObjectStoreError kind for a botocore failure, with a message for operators."""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ObjectStoreRefused(
            f"cannot {what}: no AWS credentials found for {where} (set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, BotoCoreError):
        return ObjectStoreUnavailable(
            f"cannot {what}: {where} unreachable: {redact_text(str(exc))}"
        )
    code, status = _code(exc), _status(exc)
    detail = f"{status} {code}".strip()
    if status >= 500 or code in _RETRYABLE_CODES:
        return ObjectStoreUnavailable(f"cannot {what}: {where} answered {detail}")
    if code in ("404", "NoSuchBucket") and what == "check the bucket":
        return ObjectStoreRefused(f"cannot {what}: {where} does not exist ({detail})")
    if status == 403 or code in _REFUSING_CODES:
        return ObjectStoreRefused(
            f"cannot {what}: {where} refused the credentials or the request ({detail})"
        )
    return ObjectRejected(
        f"cannot {what}: {where} rejected it ({detail}: "
        f"{exc.response.get('Error', {}).get('Message', '')})"
    )
