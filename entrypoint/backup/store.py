"""The off-box copy: one S3-compatible bucket (AWS S3, Cloudflare R2, Backblaze B2, MinIO), through boto3.

This is the only module that imports boto3, and only the backup and `restore`
import it, so a start with nothing to back up never pays its ~300 ms import.
The client sends no checksum headers it is not asked for (boto3 >= 1.36 sends
CRC32 ones by default, which R2 and B2 refuse), uses path-style addresses
(MinIO and most self-hosted stores need them), and retries a few times on
throttling and dropped connections, within bounded timeouts.

Every boto3 failure becomes one `❌` line saying what to fix (the credentials, the
bucket, the key's permissions, the endpoint), raised as the error class the
caller gives: `BackupFailed` (exit 15) for a backup, `RestoreFailed` (exit 22)
for a restore. boto3's own message is kept as `Untrusted`, so the log pipeline
scrubs it, although it never quotes the secret key (tested).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from entrypoint.config import Settings, parse_s3_url
from entrypoint.errors import BackupFailed, EntrypointError, RestoreFailed, Untrusted

Purpose = Literal["backup", "restore"]
# What a failure is raised as, what the line calls the operation, and what it says was left alone.
_FAILURE: dict[Purpose, tuple[type[EntrypointError], str, str]] = {
    "backup": (BackupFailed, "back up to", "nothing was migrated"),
    "restore": (RestoreFailed, "restore from", "nothing was changed"),
}

# Object metadata we write with every dump: its sha256, so the upload, a reuse and a restore can check it.
SHA256 = "sha256"
_CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredObject:
    """One object: its key, its size in bytes, its sha256 (from our metadata; None if it has none)."""

    key: str
    size: int
    sha256: str | None


def join(prefix: str, name: str) -> str:
    """The key of `name` under `prefix` (no leading or doubled slash)."""
    return f"{prefix}/{name}" if prefix else name


@dataclass(frozen=True)
class Credentials:
    """The AWS_* settings a client is built from (None: boto3's usual sources), and how long it may wait."""

    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    timeout: float = 20.0  # S3_TIMEOUT: per request and attempt, to connect and for the answer
    heartbeat: float = 30.0  # HEARTBEAT_INTERVAL: a line this often while a request waits

    @classmethod
    def of(cls, settings: Settings) -> Credentials:
        """The settings' AWS_* values, S3_TIMEOUT and HEARTBEAT_INTERVAL."""
        return cls(
            settings.aws_access_key_id,
            settings.aws_secret_access_key,
            settings.aws_session_token,
            settings.aws_region,
            settings.aws_endpoint_url,
            settings.s3_timeout,
            settings.heartbeat_interval,
        )


ATTEMPTS = 3  # tries of one S3 request (botocore's standard retry mode: throttling, dropped connections, timeouts)


def worst_wait(credentials: Credentials) -> float:
    """The longest one request can wait on a store that never answers: every try, connecting then reading."""
    return ATTEMPTS * 2 * credentials.timeout


class Store:
    """One bucket, reached with the settings' AWS_* values; each method raises its purpose's error on any failure."""

    def __init__(self, credentials: Credentials, bucket: str, purpose: Purpose) -> None:
        self.bucket = bucket
        self.purpose: Purpose = purpose
        self._credentials = credentials
        self._client: Any = None

    @classmethod
    def at(cls, settings: Settings, url: str, purpose: Purpose) -> tuple[Store, str]:
        """The store of `s3://bucket/path`, and the path (a prefix or a key); the URL was validated before."""
        parsed = parse_s3_url(url)
        if parsed is None:
            raise ValueError(url)
        bucket, path = parsed
        return cls(Credentials.of(settings), bucket, purpose), path

    def url(self, key: str) -> str:
        """`s3://bucket/key`, as the lines print it and `restore` takes it."""
        return f"s3://{self.bucket}/{key}"

    @property
    def client(self) -> Any:
        """boto3's S3 client, built on first use (boto3 is imported here and nowhere else)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            c = self._credentials
            session = boto3.session.Session(
                aws_access_key_id=c.access_key_id,
                aws_secret_access_key=c.secret_access_key,
                aws_session_token=c.session_token,
                region_name=c.region,
            )
            config = Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
                connect_timeout=c.timeout,
                read_timeout=c.timeout,
                s3={"addressing_style": "path"},
            )
            with self._translated("connecting to", self.url("")):
                self._client = session.client("s3", endpoint_url=c.endpoint_url, config=config)
        return self._client

    def find(self, prefix: str) -> list[StoredObject]:
        """The objects whose key starts with `prefix` (ListObjectsV2: needs s3:ListBucket), sizes only."""
        found: list[StoredObject] = []
        with self._translated("list", self.url(prefix)):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                found += [StoredObject(o["Key"], int(o["Size"]), None) for o in page.get("Contents", ())]
        return found

    def head(self, key: str) -> StoredObject:
        """One object's size and sha256 metadata (HeadObject: needs s3:GetObject)."""
        with self._translated("read", self.url(key)):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        return StoredObject(key, int(head["ContentLength"]), (head.get("Metadata") or {}).get(SHA256))

    def upload(self, path: Path, key: str, sha256: str) -> None:
        """Upload a file (multipart when large, streamed from disk), its sha256 as metadata (s3:PutObject)."""
        extra = {"Metadata": {SHA256: sha256}, "ContentType": "application/octet-stream"}
        with self._translated("write", self.url(key)):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs=extra)

    def abort_incomplete(self, prefix: str) -> list[tuple[str, str]] | None:
        """Abort the multipart uploads left open under `prefix`: (key, when it was started) each.

        None when the key may not list or abort them (s3:ListBucketMultipartUploads, s3:AbortMultipartUpload):
        that is for the caller to say, not a failure. Any other failure raises, as every call does.
        """
        from botocore.exceptions import ClientError

        found: list[tuple[str, str, str]] = []
        try:
            with self._translated("list", self.url(prefix)):
                pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
                for page in pages:
                    found += [(u["Key"], u["UploadId"], str(u.get("Initiated", "?"))) for u in page.get("Uploads", ())]
            for key, upload, _ in found:
                with self._translated("write", self.url(key)):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
        except EntrypointError as error:
            if isinstance(error.__context__, ClientError) and _denied(error.__context__):
                return None
            raise
        return [(key, initiated) for key, _, initiated in found]

    def download(self, key: str, path: Path) -> tuple[StoredObject, StoredObject]:
        """Stream an object into `path` (s3:GetObject): (what the store says it is, what arrived).

        One GetObject, not a HeadObject first: a HEAD answer has no body, so a wrong
        secret or a missing key would both read as a bare 403/404.
        """
        digest = hashlib.sha256()
        size = 0
        with self._translated("read", self.url(key)):
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            stated = StoredObject(key, int(answer["ContentLength"]), (answer.get("Metadata") or {}).get(SHA256))
            with path.open("wb") as out:
                for chunk in answer["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        return stated, StoredObject(key, size, digest.hexdigest())

    @contextmanager
    def _translated(self, doing: str, where: str) -> Iterator[None]:
        """boto3's exceptions as our one `❌` line (exit 15 for a backup, 22 for a restore)."""
        from botocore import exceptions as aws

        from entrypoint.backup.heartbeat import waiting

        try:
            with waiting(f"waiting for {where} ({doing})", self._credentials.heartbeat):
                yield
        except aws.NoCredentialsError:
            raise self._fail(
                "no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", where
            ) from None
        except aws.PartialCredentialsError:
            raise self._fail(
                "only half of the S3 key is set: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", where
            ) from None
        except aws.NoRegionError:
            raise self._fail("no region: set AWS_REGION (auto for Cloudflare R2)", where) from None
        except (aws.EndpointConnectionError, aws.ConnectTimeoutError, aws.ReadTimeoutError) as error:
            raise self._fail(
                "the S3 endpoint is unreachable ({reason}): check AWS_ENDPOINT_URL and the network", where, error
            ) from None
        except aws.ClientError as error:
            raise self._client_error(error, doing, where) from None
        except Exception as error:
            # upload_file wraps a ClientError in S3UploadFailedError; the ClientError is its __context__.
            cause = error.__context__ or error.__cause__
            if isinstance(cause, aws.ClientError):
                raise self._client_error(cause, doing, where) from None
            if isinstance(error, aws.BotoCoreError | OSError) or type(error).__module__.startswith("boto3"):
                raise self._fail("S3 said: {reason}", where, error) from None
            raise

    def _client_error(self, error: Any, doing: str, where: str) -> EntrypointError:
        code = str(error.response.get("Error", {}).get("Code", "")) or "?"
        bucket = self.bucket
        if code in {"NoSuchBucket", "404"} and doing in {"list", "write"}:
            return self._fail(
                f"the bucket {bucket!r} does not exist: create it, or check BACKUP_URL, AWS_ENDPOINT_URL and "
                "AWS_REGION",
                where,
            )
        if code in {"NoSuchKey", "404"}:
            return self._fail("no such object: check the key (the backup line prints it)", where)
        if code in {"InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}:
            return self._fail(
                f"the store does not know this key ({code}): check AWS_ACCESS_KEY_ID, and that AWS_ENDPOINT_URL "
                "is the store that issued it",
                where,
            )
        if code == "SignatureDoesNotMatch":
            return self._fail("the secret key is wrong (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY", where)
        if code in {"AccessDenied", "403", "AllAccessDisabled", "Forbidden"}:
            action = {"list": "s3:ListBucket", "read": "s3:GetObject", "write": "s3:PutObject"}.get(doing, "access")
            return self._fail(
                f"access denied: the key may not {doing} there. Grant it {action} on the bucket and prefix "
                "(PutObject, GetObject and ListBucket: see the README's bucket policy)",
                where,
            )
        return self._fail(f"S3 refused ({code}): {{reason}}", where, error)

    def _fail(self, problem: str, where: str, error: BaseException | None = None) -> EntrypointError:
        failure, verb, then = _FAILURE[self.purpose]
        reason = Untrusted(" ".join(str(error).split())) if error is not None else ""
        return failure(
            "❌ Cannot {verb} {where}: " + problem + "; {then}",
            verb=verb,
            where=Untrusted(where),
            reason=reason,
            then=then,
        )


_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled", "Forbidden"})


def _denied(error: Any) -> bool:
    """Whether a boto3 ClientError is the store refusing the key the operation."""
    return str(error.response.get("Error", {}).get("Code", "")) in _DENIED
