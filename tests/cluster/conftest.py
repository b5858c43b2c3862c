"""Fixtures shared by tests/cluster: the session's local S3 server (moto)."""

from s3_server import moto_endpoint  # noqa: F401  (a session fixture)
