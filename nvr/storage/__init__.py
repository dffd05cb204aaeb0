"""Replication of closed segments to S3-compatible storage, and reading them back."""
