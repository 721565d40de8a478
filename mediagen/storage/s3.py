"""Media in an S3 bucket, served by a CDN base URL or by presigned URLs made when shown.

Uploads stream from disk through boto3's managed transfer (multipart above a threshold, a
bounded number of parts in flight), so memory stays near part size x concurrency whatever the
file size. The SDK's CRC checksums are on; a failed multipart upload is aborted by the transfer
manager, and a lifecycle rule cleans up any that a crash leaves behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from ..config import Settings
from ..errors import StorageError

log = logging.getLogger(__name__)
MiB = 1024 * 1024
CORS_RULE_ID = "mediagen-media-get"
LIFECYCLE_RULE_ID = "mediagen-abort-incomplete-uploads"
CACHE_CONTROL = "public, max-age=86400"
FILEOBJ_PARTS_IN_MEMORY = 4
DELETE_OBJECTS_MAX = 1000  # keys S3 accepts in one DeleteObjects request


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _failures_named(action: str) -> Iterator[None]:
    """S3's refusal as our error, named by what we were doing (the SDK's text names neither)."""
    try:
        yield
    except ClientError as exc:
        raise StorageError(f"{action} failed: {_code(exc)}") from None


class S3Storage:
    name = "s3"
    setup: str | None = "CORS and lifecycle rules"

    def __init__(self, settings: Settings) -> None:
        assert settings.s3_bucket
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/") + "/" if settings.s3_prefix.strip("/") else ""
        self.public_base_url = settings.public_base_url
        self.presign_ttl = settings.presign_ttl
        self.cors_origins = settings.cors_origins
        self.client = boto3.session.Session().client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            config=Config(
                signature_version="s3v4",
                retries={"mode": "standard", "max_attempts": 5},
                request_checksum_calculation="when_supported",
            ),
        )
        part = settings.s3_multipart_threshold_mb * MiB
        self.transfer = TransferConfig(
            multipart_threshold=part,
            multipart_chunksize=part,
            max_concurrency=settings.s3_max_concurrency,
            use_threads=True,
        )
        # Parts a file-object upload holds in memory (s3transfer's default of 10 would be 80 MiB).
        # Media goes through put_file, which reads parts from disk and holds none of them.
        self.transfer.max_in_memory_upload_chunks = min(settings.s3_max_concurrency, FILEOBJ_PARTS_IN_MEMORY)

    def _full(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} must be a relative path without '..'")
        return self.prefix + key

    def _extra_args(self, content_type: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
        return {
            "ContentType": content_type,
            "CacheControl": CACHE_CONTROL,
            "ChecksumAlgorithm": "CRC32",
            "Metadata": {k: v for k, v in (metadata or {}).items() if v.isascii() and len(v) <= 256},
        }

    def put(self, key: str, data: BinaryIO, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        with _failures_named(f"S3 upload of {key}"):
            extra = self._extra_args(content_type, metadata)
            self.client.upload_fileobj(data, self.bucket, self._full(key), ExtraArgs=extra, Config=self.transfer)

    def put_file(self, key: str, path: Path, content_type: str, metadata: Mapping[str, str] | None = None) -> None:
        # Given a file name, the transfer manager reads each part from disk as it is sent; given a
        # file object it buffers parts in memory (bench/ingest_memory.py measures the difference).
        with _failures_named(f"S3 upload of {key}"):
            extra = self._extra_args(content_type, metadata)
            self.client.upload_file(str(path), self.bucket, self._full(key), ExtraArgs=extra, Config=self.transfer)

    def open(self, key: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise StorageError(f"S3 read of {key} failed: {_code(exc)}") from None
        return cast(BinaryIO, body)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def delete_many(self, keys: Sequence[str]) -> dict[str, str]:
        failed: dict[str, str] = {}
        ours = {self._full(key): key for key in keys}
        full_keys = list(ours)
        for start in range(0, len(full_keys), DELETE_OBJECTS_MAX):
            batch = [{"Key": key} for key in full_keys[start : start + DELETE_OBJECTS_MAX]]
            with _failures_named(f"S3 delete of {len(batch)} object(s)"):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            # A key S3 does not have is deleted as far as it is concerned: no error comes back.
            for error in answer.get("Errors", []):
                failed[ours.get(error.get("Key", ""), error.get("Key", ""))] = (
                    f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
                )
        return failed

    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        with _failures_named(f"S3 delete of {prefix}*"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._full(prefix))
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    removed += len(keys)
        return removed

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def size(self, key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"S3 look-up of {key} failed: {_code(exc)}") from None
        return int(head["ContentLength"])

    def url(self, key: str) -> str:
        full = self._full(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(full)}"
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=self.presign_ttl
            )
        )

    def prepare(self) -> list[str]:
        """Ensure our CORS rule and the abort-incomplete-uploads lifecycle rule, keeping others."""
        return [self._ensure_cors(), self._ensure_lifecycle()]

    def _ensure_cors(self) -> str:
        ours = {
            "ID": CORS_RULE_ID,
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedOrigins": list(self.cors_origins),
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"],
            "MaxAgeSeconds": 3600,
        }
        try:
            try:
                rules = self.client.get_bucket_cors(Bucket=self.bucket)["CORSRules"]
            except ClientError as exc:
                if _code(exc) != "NoSuchCORSConfiguration":
                    raise
                rules = []
            if any(_same_cors(rule, ours) for rule in rules):
                return f"CORS on {self.bucket} already allows GET/HEAD from {', '.join(self.cors_origins)}"
            others = [rule for rule in rules if rule.get("ID") != CORS_RULE_ID]
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [*others, ours]})
        except ClientError as exc:
            return (
                f"could not set CORS on {self.bucket} ({_code(exc)}): the credentials may lack "
                f"s3:GetBucketCORS/s3:PutBucketCORS; allow GET/HEAD from {', '.join(self.cors_origins)} by hand"
            )
        origins = ", ".join(self.cors_origins)
        return f"CORS on {self.bucket} now allows GET/HEAD from {origins} ({len(others)} other rule(s) kept)"

    def _ensure_lifecycle(self) -> str:
        ours = {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": self.prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as exc:
                if _code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if any(rule.get("ID") == LIFECYCLE_RULE_ID for rule in rules):
                return "lifecycle rule aborting incomplete uploads is in place"
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, ours]}
            )
        except ClientError as exc:
            return (
                f"could not set the lifecycle rule on {self.bucket} ({_code(exc)}): the credentials may lack "
                "s3:PutLifecycleConfiguration; incomplete multipart uploads will not be cleaned up automatically"
            )
        return f"lifecycle rule aborting incomplete uploads after 1 day added ({len(rules)} other rule(s) kept)"


def _same_cors(rule: dict[str, Any], ours: dict[str, Any]) -> bool:
    return rule.get("ID") == CORS_RULE_ID and all(
        sorted(rule.get(k, [])) == sorted(ours[k]) for k in ("AllowedMethods", "AllowedOrigins")
    )
