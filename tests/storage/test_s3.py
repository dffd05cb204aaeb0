"""S3Store against a real SeaweedFS server: checksums enforced, errors classified."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from nvr.config import S3Config
from nvr.errors import ObjectRejected, ObjectStoreRefused, ObjectStoreUnavailable
from nvr.storage.keys import composite_sha256, sha256_base64
from nvr.storage.s3 import LockMode, S3Store
from nvr.storage.testing import SeaweedServer

from .conftest import new_bucket


def _store(server: SeaweedServer, bucket: str, **settings: object) -> S3Store:
    values: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "bucket": bucket,
        "request_timeout_seconds": 3,
    }
    values.update(settings)
    return S3Store(S3Config.model_validate(values))


def _b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_put_wrong_checksum_rejected_by_server(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)
    body = b"segment bytes" * 1000

    with pytest.raises(ObjectRejected, match="BadDigest"):
        store.put("cam1/bad.mp4", body, _b64(body + b"corrupted"), None)

    assert store.head("cam1/bad.mp4") is None


def test_put_right_checksum_head_reports_size_and_checksum(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)
    body = b"segment bytes" * 1000

    store.put(
        "cam1/good.mp4", body, sha256_base64(hashlib.sha256(body).hexdigest()), None
    )

    info = store.head("cam1/good.mp4")
    assert info is not None
    assert (info.size, info.checksum_sha256) == (len(body), _b64(body))
    assert store.read_range("cam1/good.mp4", 13, 26) == body[13:39]


def test_upload_part_wrong_checksum_rejected_by_server(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)
    upload_id = store.create_multipart("cam1/parts.mp4", None)

    with pytest.raises(ObjectRejected, match="BadDigest"):
        store.upload_part("cam1/parts.mp4", upload_id, 1, b"x" * 1000, _b64(b"y"))
    store.abort_multipart("cam1/parts.mp4", upload_id)


def test_multipart_checksum_composite_of_part_digests(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)
    parts = [b"a" * (5 * 1024 * 1024), b"b" * 1000]
    upload_id = store.create_multipart("cam1/mp.mp4", None)
    listed = []
    for number, part in enumerate(parts, start=1):
        etag = store.upload_part("cam1/mp.mp4", upload_id, number, part, _b64(part))
        listed.append((number, etag, _b64(part)))
    store.complete_multipart("cam1/mp.mp4", upload_id, listed)

    info = store.head("cam1/mp.mp4")

    assert info is not None
    assert info.size == sum(map(len, parts))
    assert info.checksum_sha256 == composite_sha256(
        [hashlib.sha256(p).digest() for p in parts]
    )


def test_check_bucket_wrong_secret_refused(aws_env: SeaweedServer, bucket: str) -> None:
    store = _store(
        aws_env,
        bucket,
        access_key_id=aws_env.access_key,
        secret_access_key="not-the-secret",
    )

    with pytest.raises(ObjectStoreRefused, match="refused the credentials"):
        store.check_bucket(require_lock=False)


def test_check_bucket_missing_bucket_refused(aws_env: SeaweedServer) -> None:
    with pytest.raises(ObjectStoreRefused, match="does not exist"):
        _store(aws_env, "nvr-no-such-bucket").check_bucket(require_lock=False)


def test_check_bucket_lock_required_without_lock_refused(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket, object_lock="compliance")

    with pytest.raises(ObjectStoreRefused, match="has no Object Lock"):
        store.check_bucket(require_lock=True)


def test_check_bucket_lock_required_with_lock_passes(aws_env: SeaweedServer) -> None:
    store = _store(
        aws_env, new_bucket(aws_env, object_lock=True), object_lock="compliance"
    )

    store.check_bucket(require_lock=True)


def test_check_bucket_unreachable_unavailable(aws_env: SeaweedServer) -> None:
    store = S3Store(
        S3Config(
            endpoint_url="http://127.0.0.1:9", bucket="nvr-x", request_timeout_seconds=1
        )
    )

    with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
        store.check_bucket(require_lock=False)


def test_locked_object_delete_before_date_refused(aws_env: SeaweedServer) -> None:
    store = _store(aws_env, new_bucket(aws_env, object_lock=True))
    body = b"evidence" * 100
    until_us = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1_000_000)
    store.put("cam1/locked.mp4", body, _b64(body), ("COMPLIANCE", until_us))
    info = store.head("cam1/locked.mp4")
    assert info is not None and info.version_id is not None
    assert info.lock_mode == "COMPLIANCE"
    assert info.retain_until_us is not None
    assert abs(info.retain_until_us - until_us) < 1_000_000

    with pytest.raises(ObjectRejected, match="Object Lock has not expired"):
        store.delete("cam1/locked.mp4", info.version_id)

    assert store.read_range("cam1/locked.mp4", 0, len(body)) == body


def test_delete_many_locked_version_refused_others_deleted(
    aws_env: SeaweedServer,
) -> None:
    store = _store(aws_env, new_bucket(aws_env, object_lock=True))
    until_us = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1_000_000)
    versions: dict[str, str | None] = {}
    for name in ("a", "locked", "b"):
        body = name.encode() * 100
        lock: tuple[LockMode, int] | None = None
        if name == "locked":
            lock = ("COMPLIANCE", until_us)
        store.put(f"cam1/{name}.mp4", body, _b64(body), lock)
        info = store.head(f"cam1/{name}.mp4")
        assert info is not None and info.version_id is not None
        versions[f"cam1/{name}.mp4"] = info.version_id

    refused = store.delete_many(list(versions.items()))

    assert list(refused) == ["cam1/locked.mp4"]
    assert isinstance(refused["cam1/locked.mp4"], ObjectRejected)
    assert "Object Lock has not expired" in str(refused["cam1/locked.mp4"])
    assert store.head("cam1/a.mp4") is None and store.head("cam1/b.mp4") is None
    assert store.head("cam1/locked.mp4") is not None
    # deleting versions already gone again is not an error
    assert (
        store.delete_many([(k, v) for k, v in versions.items() if "locked" not in k])
        == {}
    )


def test_delete_many_missing_objects_count_as_deleted(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)
    body = b"x" * 10
    store.put("cam1/present.mp4", body, _b64(body), None)

    refused = store.delete_many([("cam1/present.mp4", None), ("cam1/never.mp4", None)])

    assert refused == {}
    assert store.head("cam1/present.mp4") is None


def test_delete_many_over_request_limit_raises_value_error(
    aws_env: SeaweedServer, bucket: str
) -> None:
    store = _store(aws_env, bucket)

    with pytest.raises(ValueError, match="at most 1000"):
        store.delete_many([(f"k{n}", None) for n in range(1001)])


def test_delete_many_unreachable_unavailable(aws_env: SeaweedServer) -> None:
    store = S3Store(
        S3Config(
            endpoint_url="http://127.0.0.1:9", bucket="nvr-x", request_timeout_seconds=1
        )
    )

    with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
        store.delete_many([("cam1/a.mp4", None)])
