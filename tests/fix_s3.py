"""pytest plugin: a real S3-compatible server on loopback (moto's), with IAM auth on, and buckets and keys per test.

The server is started once per session (`moto.server.ThreadedMotoServer` on
127.0.0.1, a free port): the entrypoint, run as a child process or from the
image with ``--network host``, reaches it over HTTP as it would reach R2 or
MinIO. Its IAM authentication is turned on after an admin key is made, so a
wrong secret, an unknown key id and a key whose policy denies an action fail
as they do on AWS (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, `AccessDenied`).

Fixtures:

- ``s3_server`` (session): the `S3Server` (``.endpoint``, ``.admin`` client,
  ``.make_key(actions, bucket)``, ``.objects(bucket)``).
- ``s3_bucket`` (function): a new empty bucket and a key allowed what the README's
  policy grants (PutObject, GetObject, ListBucket), as `S3Bucket` (``.name``,
  ``.url(prefix)``, ``.env``: the AWS_* variables a deploy needs).
- ``tampering_proxy`` (function): an HTTP proxy in front of the server that
  rewrites the sha256 metadata HeadObject returns, to fake a store that keeps
  something else than what was uploaded.
"""

from __future__ import annotations

import http.client
import http.server
import json
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

REGION = "us-east-1"
# What a secret key in these tests carries: characters that mean something in URLs, shells and JSON.
SECRET_SPECIALS = "/+=@:%&?#\"'\\$ "


def special_secret() -> str:
    """A (wrong) secret key full of special characters, unique per call, to grep for in any output."""
    return f"Sk{secrets.token_hex(6)}{SECRET_SPECIALS}{secrets.token_hex(4)}"


@dataclass
class S3Server:
    """The session's moto server: its endpoint, an admin client, and helpers to make keys and read buckets."""

    endpoint: str
    admin_key: tuple[str, str]
    _server: Any = field(repr=False)

    def client(self, service: str = "s3", key: tuple[str, str] | None = None) -> Any:
        """A boto3 client of the server, signed with `key` (default: the admin's)."""
        import boto3
        from botocore.config import Config

        key_id, secret = key or self.admin_key
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @property
    def admin(self) -> Any:
        """An S3 client with every permission."""
        return self.client()

    def make_key(self, actions: list[str], bucket: str) -> tuple[str, str]:
        """A new IAM user allowed `actions` (e.g. ["s3:PutObject"]) on `bucket` and its objects: (key id, secret)."""
        iam = self.client("iam")
        user = f"u{secrets.token_hex(6)}"
        iam.create_user(UserName=user)
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="backup", PolicyDocument=json.dumps(document))
        made = iam.create_access_key(UserName=user)["AccessKey"]
        return made["AccessKeyId"], made["SecretAccessKey"]

    def objects(self, bucket: str) -> dict[str, int]:
        """key -> size of every object in the bucket."""
        listed = self.admin.list_objects_v2(Bucket=bucket)
        return {o["Key"]: int(o["Size"]) for o in listed.get("Contents", ())}

    def env(self, key: tuple[str, str]) -> dict[str, str]:
        """The variables that point the entrypoint at this server with `key`."""
        return {
            "AWS_ACCESS_KEY_ID": key[0],
            "AWS_SECRET_ACCESS_KEY": key[1],
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the server, and a key with the README's minimal policy on it."""

    server: S3Server
    name: str
    key: tuple[str, str]

    def url(self, prefix: str = "backups") -> str:
        """`s3://<bucket>/<prefix>`: what BACKUP_URL is set to."""
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    @property
    def env(self) -> dict[str, str]:
        """AWS_* for this bucket's key."""
        return self.server.env(self.key)

    def objects(self) -> dict[str, int]:
        """key -> size of every object in the bucket."""
        return self.server.objects(self.name)


MINIMAL_POLICY = ["s3:PutObject", "s3:GetObject", "s3:ListBucket"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 (and IAM) server on 127.0.0.1, authentication on, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bootstrap = S3Server(endpoint, ("AKIABOOTSTRAP", "bootstrap"), server)
        iam = bootstrap.client("iam")
        iam.create_user(UserName="admin")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}]}
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(policy))
        admin = iam.create_access_key(UserName="admin")["AccessKey"]
        # From now on every request must be signed by a key IAM knows, and is checked against its policy.
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
        yield S3Server(endpoint, (admin["AccessKeyId"], admin["SecretAccessKey"]), server)
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    """A new empty bucket, and a key allowed PutObject, GetObject and ListBucket on it."""
    name = f"backups-{secrets.token_hex(4)}"
    s3_server.admin.create_bucket(Bucket=name)
    return S3Bucket(s3_server, name, s3_server.make_key(MINIMAL_POLICY, name))


class _Tamper(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the server; on a HEAD answer, replaces the sha256 metadata."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() in {"transfer-encoding", "connection"}:
                    continue
                tampered = self.command == "HEAD" and name.lower() == "x-amz-meta-sha256"
                self.send_header(name, "0" * 64 if tampered else value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815 - http.server's names

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def tampering_proxy(s3_server: S3Server) -> Iterator[str]:
    """The endpoint of a proxy to the server whose HeadObject answers carry a wrong sha256."""
    host, port = s3_server.endpoint.removeprefix("http://").rsplit(":", 1)
    handler = type("Tamper", (_Tamper,), {"upstream": (host, int(port))})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()
