"""Small objects beside a remote store's table: its metadata file, its lease, a job's journal.

LanceDB reads and writes the table itself; the few small files engramdb keeps
beside it go through :class:`ObjectFiles`, an S3 client (boto3) built from the
same ``storage_options`` LanceDB is given. Conditional writes
(``If-None-Match: *`` to create, ``If-Match: <etag>`` to replace) are what the
writer lease is made of; S3 has offered both since 2024, and so do MinIO and
moto. Every failure becomes an engramdb error naming the object, with the
credentials taken out.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from engramdb.errors import StoreIOError, ValidationError
from engramdb.store.location import StoreLocation

__all__ = ["ConditionFailed", "ObjectFiles", "Stored", "object_files"]

_ENDPOINT = ("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url")
_REGION = ("aws_region", "region", "aws_default_region")
_KEY_ID = ("aws_access_key_id", "access_key_id")
_SECRET = ("aws_secret_access_key", "secret_access_key")
_TOKEN = ("aws_session_token", "session_token", "aws_token", "token")
_VIRTUAL = ("aws_virtual_hosted_style_request", "virtual_hosted_style_request")
_DEFAULT_REGION = "us-east-1"
"""What LanceDB's object store assumes when no region is given (so both agree)."""
_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_UNSUPPORTED = {"NotImplemented", "501"}


class ConditionFailed(Exception):
    """A conditional write found the object not as expected (another writer got there first)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An object as read: its bytes, its ETag, and the server's clock.

    Attributes:
        modified: When the server last wrote it (the server's clock).
        now: The server's clock when it answered (its ``Date`` header), so an
            age is measured on one clock whatever this machine's says.
    """

    data: bytes
    etag: str
    modified: datetime
    now: datetime


def _pick(options: dict[str, str], keys: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


class ObjectFiles:
    """Read and write small objects under a remote store's prefix.

    Args:
        location: A remote store (``s3://``).

    Raises:
        ValidationError: the scheme is not ``s3`` (the metadata file and the lease
            need conditional writes, which engramdb does through an S3 client).
        StoreIOError: boto3 (the ``s3`` extra) is not installed.
    """

    def __init__(self, location: StoreLocation) -> None:
        if location.scheme not in {"s3", "s3a"}:
            raise ValidationError(
                f"store {location} is on {location.scheme}://, where engramdb cannot yet keep "
                "its metadata file and writer lease (they need S3 conditional writes); use an "
                "s3:// store (AWS S3, MinIO, R2, ...), or a local directory"
            )
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as exc:
            raise StoreIOError(
                errno.ENOPKG,
                f"store {location} is on object storage, which needs boto3; install it with "
                "pip install 'engramdb[s3]'",
            ) from exc
        self.location = location
        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
        self._client = _client(tuple(sorted(location.options.items())))

    def get(self, name: str) -> Stored | None:
        """The object ``name`` under the store's prefix, or None if there is none."""
        try:
            reply = self._client.get_object(Bucket=self.location.bucket, Key=self._key(name))
            data = reply["Body"].read()
        except self._errors as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._error(exc, f"read {name}") from exc
        return Stored(
            data=data,
            etag=str(reply["ETag"]),
            modified=reply["LastModified"].astimezone(UTC),
            now=_server_now(reply),
        )

    def put(
        self, name: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        """Write ``name`` whole (an S3 PUT is atomic); return its new ETag.

        Args:
            if_absent: Only if there is no such object yet (``If-None-Match: *``).
            if_match: Only if the object's ETag is still this one (``If-Match``).

        Raises:
            ConditionFailed: the condition did not hold; nothing was written.
        """
        extra: dict[str, str] = {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            reply = self._client.put_object(
                Bucket=self.location.bucket, Key=self._key(name), Body=data, **extra
            )
        except self._errors as exc:
            if extra and _code(exc) in _LOST_RACE | _MISSING:
                raise ConditionFailed(name) from None
            raise self._error(exc, f"write {name}") from exc
        return str(reply["ETag"])

    def delete(self, name: str, *, if_match: str | None = None) -> None:
        """Delete ``name`` (only if its ETag is ``if_match``, when given); absent is fine.

        Raises:
            ConditionFailed: the object changed since ``if_match`` was read.
        """
        extra = {"IfMatch": if_match} if if_match is not None else {}
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=self._key(name), **extra)
        except self._errors as exc:
            code = _code(exc)
            if code in _MISSING:
                return
            if extra and code in _LOST_RACE:
                raise ConditionFailed(name) from None
            if extra and code in _UNSUPPORTED:
                # A server without conditional deletes: read, compare, then delete. A
                # lease taken over in the window between would be deleted; its new
                # holder's next renewal then fails and it stops writing: safe, if unlucky.
                stored = self.get(name)
                if stored is None:
                    return
                if stored.etag != if_match:
                    raise ConditionFailed(name) from None
                self.delete(name)
                return
            raise self._error(exc, f"delete {name}") from exc

    def any_under(self, name: str) -> bool:
        """Whether any object's key starts with ``name/`` under the store's prefix."""
        try:
            reply = self._client.list_objects_v2(
                Bucket=self.location.bucket, Prefix=self._key(name).rstrip("/") + "/", MaxKeys=1
            )
        except self._errors as exc:
            raise self._error(exc, f"list {name}") from exc
        return bool(reply.get("KeyCount", 0))

    def _key(self, name: str) -> str:
        return self.location.key(name)

    def _error(self, exc: Exception, operation: str) -> StoreIOError:
        """botocore's error as ours: what, where, and what to check; no credentials."""
        code = _code(exc)
        hint = {
            "NoSuchBucket": f"the bucket {self.location.bucket!r} does not exist; create it",
            "AccessDenied": "access denied; check the credentials and the bucket's policy",
            "InvalidAccessKeyId": "the access key is not known; check the credentials",
            "SignatureDoesNotMatch": "the secret key is wrong; check the credentials",
        }.get(code or "", "check the endpoint, the bucket and the credentials")
        detail = self.location.redact(str(exc).splitlines()[0][:300] if str(exc) else code or "")
        return StoreIOError(
            errno.EIO,
            f"cannot {operation} in store {self.location}: {type(exc).__name__}: {detail}; {hint}",
        )


_CLIENTS: dict[tuple[tuple[str, str], ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(options: tuple[tuple[str, str], ...]) -> Any:
    """A boto3 S3 client for these storage options, made once (boto3 clients are
    thread-safe, and building one costs tens of milliseconds)."""
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(options)
        if found is not None:
            return found
        import boto3
        from botocore.config import Config

        given = dict(options)
        virtual = (_pick(given, _VIRTUAL) or "false").lower() in {"1", "true", "yes"}
        region = _pick(given, _REGION) or os.environ.get("AWS_REGION")
        found = _CLIENTS[options] = boto3.session.Session().client(
            "s3",
            endpoint_url=_pick(given, _ENDPOINT),
            region_name=region or os.environ.get("AWS_DEFAULT_REGION") or _DEFAULT_REGION,
            aws_access_key_id=_pick(given, _KEY_ID),
            aws_secret_access_key=_pick(given, _SECRET),
            aws_session_token=_pick(given, _TOKEN),
            config=Config(
                s3={"addressing_style": "virtual" if virtual else "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=10,
            ),
        )
        return found


def object_files(location: StoreLocation) -> ObjectFiles:
    """The small-object client of a remote store (its S3 client is shared by every
    store with the same storage options)."""
    return ObjectFiles(location)


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error") or {}
    code = error.get("Code")
    if code is None:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status) if status is not None else None
    return str(code)


def _server_now(reply: dict[str, Any]) -> datetime:
    """The server's ``Date`` header as an aware time (this machine's clock if it has none)."""
    date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        try:
            return parsedate_to_datetime(date).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)
