"""Fixtures: a real S3 server (SeaweedFS) shared with the storage tests' definitions."""

from tests.storage.conftest import aws_env, bucket, seaweed

__all__ = ["aws_env", "bucket", "seaweed"]
