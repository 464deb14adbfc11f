"""boto3 adapters for the ports. The only module of the package that imports boto3.

Clients are created lazily and once per process: boto3's import and client
construction dominate a cold start, and every AWS endpoint honours
AWS_ENDPOINT_URL so the same code talks to moto or a local emulator.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from exporter.errors import PermanentError
from exporter.json_codec import JSONDecodeError, loads
from exporter.ports import MAX_QUEUE_DELAY_S, Credentials
from exporter.run.parallel import each_at_once

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

_DELETE_BATCH = 1000
_JSON = "application/json"
_SEND_BATCH = 10


@functools.cache
def _session() -> Any:
    import boto3  # noqa: PLC0415 -- deferred: the largest import of a cold start

    return boto3.session.Session()


def _config() -> Any:
    from botocore.config import Config  # noqa: PLC0415

    return Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16)


@functools.cache
def s3_client() -> S3Client:
    client: S3Client = _session().client("s3", config=_config())
    return client


@functools.cache
def sns_client() -> SNSClient:
    client: SNSClient = _session().client("sns", config=_config())
    return client


@functools.cache
def sqs_client() -> SQSClient:
    client: SQSClient = _session().client("sqs", config=_config())
    return client


def _is_precondition_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # 409 ConditionalRequestConflict: another conditional write to the key is in flight.
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class S3Store:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._given = client

    @property
    def _client(self) -> S3Client:
        # Created on first use: a cold start pays only for the clients it needs.
        return self._given or s3_client()

    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as exc:
            if _is_precondition_failed(exc):
                return False
            raise
        return True

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return answer["Body"].read(), answer["ETag"]

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=_JSON, IfMatch=etag
            )
        except ClientError as exc:
            # 412: another writer changed it; 404: it was deleted meanwhile.
            code = exc.response.get("Error", {}).get("Code")
            if _is_precondition_failed(exc) or code in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def list_tagged(self, prefix: str) -> Iterator[tuple[str, str]]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item.get("ETag", "")

    def copy(self, source_key: str, target_key: str) -> None:
        self._client.copy_object(
            Bucket=self.bucket,
            Key=target_key,
            CopySource={"Bucket": self.bucket, "Key": source_key},
            MetadataDirective="COPY",
        )

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            answer = self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"S3 delete failed for {first.get('Key')}: {first.get('Code')}")


class SnsPublisher:
    def __init__(self, topic_arn: str, client: SNSClient | None = None) -> None:
        self.topic_arn = topic_arn
        self._given = client

    @property
    def _client(self) -> SNSClient:
        return self._given or sns_client()

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None:
        self._client.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],  # SNS rejects longer subjects
            Message=message,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        )


class SqsQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._given = client

    @property
    def _client(self) -> SQSClient:
        return self._given or sqs_client()

    def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
        """Batches of ten, side by side (a brand-year's start sends 37 of them); every
        batch is answered before this returns or raises, and a message SQS refused
        fails the send, naming the first refused (in the order of `bodies`) and how many."""
        if not 0 <= delay_s <= MAX_QUEUE_DELAY_S:
            raise ValueError(f"delay_s must be 0..{MAX_QUEUE_DELAY_S}, got {delay_s}")
        batches = [
            bodies[start : start + _SEND_BATCH] for start in range(0, len(bodies), _SEND_BATCH)
        ]
        answers = each_at_once(lambda batch: self._send_batch(batch, delay_s), batches)
        failed = [
            entry
            for answer in answers
            for entry in sorted(answer.get("Failed") or [], key=lambda e: int(e.get("Id", 0)))
        ]
        if failed:
            first = failed[0]
            raise RuntimeError(
                f"SQS send failed: {first.get('Code')} {first.get('Message')} "
                f"({len(failed)} of {len(bodies)} messages)"
            )

    def _send_batch(self, batch: Sequence[str], delay_s: int) -> Any:
        return self._client.send_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(n), "MessageBody": body, "DelaySeconds": delay_s}
                if delay_s
                else {"Id": str(n), "MessageBody": body}
                for n, body in enumerate(batch)
            ],
        )


@functools.cache
def _secrets() -> Any:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415

    # Our own session: its loader has already read the endpoint and service
    # metadata for the other clients, which makes this client cheap to create.
    return SecretsProvider(boto3_session=_session())


def forget_credentials() -> None:
    """Drop the cached secret (the cache otherwise lives for the warm container)."""
    _secrets.cache_clear()


def read_credentials(secret_id: str) -> Credentials:
    """Client credentials from Secrets Manager, cached by Powertools across warm invocations."""
    from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415
        GetParameterError,
    )

    try:
        raw = _secrets().get(secret_id, max_age=300)
    except GetParameterError as exc:
        text = str(exc)
        if any(code in text for code in ("ResourceNotFound", "AccessDenied", "InvalidRequest")):
            raise PermanentError(
                f"SECRET_ID: secret {secret_id!r} cannot be read ({text[:120]})"
            ) from None
        raise
    try:
        value = loads(raw.encode() if isinstance(raw, str) else raw)
    except JSONDecodeError:
        raise PermanentError(f"SECRET_ID: secret {secret_id!r} is not JSON") from None
    if not isinstance(value, dict):
        raise PermanentError(f"SECRET_ID: secret {secret_id!r} is not a JSON object")
    client_id, client_secret = value.get("client_id"), value.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise PermanentError(
            f"SECRET_ID: secret {secret_id!r} needs string fields client_id and client_secret"
        )
    return Credentials(client_id, client_secret)
