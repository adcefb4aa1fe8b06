"""Where packed data lives: a local folder or an ``s3://BUCKET/PREFIX`` URL, read and written the same way.

Credentials and the endpoint come from the usual environment variables only (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL`` for an S3-compatible server such as MinIO), never from a config file that a
recipe names. Every failure of the object store is one :class:`dan.errors.DanError` line: a missing
bucket or key, refused credentials, an endpoint that cannot be reached.

A plain-``http://`` endpoint (a server on a private network or on loopback) is read through LitData's
boto3 path: its obstore path refuses plain http (``HTTP error: builder error``, LitData 0.2.76), so
:func:`litdata_storage` turns it off in that process (:func:`prefer_boto3`). ``https://`` endpoints
and AWS itself keep LitData's own choice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from dan.errors import DanError

__all__ = ["DataSourceError", "Location", "is_url", "litdata_storage", "prefer_boto3", "url_of"]

SCHEMES = ("s3://",)


class DataSourceError(DanError):
    """The data could not be fetched (object store gone, refused, missing): training stops with a
    resumable checkpoint (:class:`dan.training.resume.ResumableTraining`), as for a signal."""


def url_of(root: str | os.PathLike) -> str:
    """``root`` as the user wrote it: a local path, or an ``s3://`` URL that ``Path()`` had folded to ``s3:/``."""
    text = os.fspath(root)
    if text.startswith("s3:/") and not text.startswith("s3://"):
        return "s3://" + text[len("s3:/") :]
    return text


def is_url(root: str | os.PathLike) -> bool:
    """Whether ``root`` names object storage (``s3://``) rather than a local folder."""
    return url_of(root).startswith(SCHEMES)


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def prefer_boto3() -> None:
    """Make LitData download chunks through boto3 in this process (not obstore, which refuses plain http)."""
    import litdata.streaming.downloader as downloader

    downloader._OBSTORE_AVAILABLE = False  # type: ignore[attr-defined]  # LitData has no setting for this


def litdata_storage() -> dict[str, Any]:
    """LitData's ``storage_options`` from the environment (the endpoint), with the boto3 path for plain http."""
    endpoint = _endpoint()
    if endpoint is None:
        return {}
    if endpoint.startswith("http://"):
        prefer_boto3()
    return {"endpoint_url": endpoint}


def _s3_error(url: str, err: Exception) -> DataSourceError:
    """One line for what went wrong talking to the object store."""
    return DataSourceError(_s3_message(url, err))


def _s3_message(url: str, err: Exception) -> str:
    """One line for what went wrong talking to the object store."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(err, NoCredentialsError):
        return f"{url}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return f"{url}: bucket {url[5:].split('/')[0]!r} not found"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"):
            return f"{url}: the object store refused the credentials ({code}): check AWS_ACCESS_KEY_ID etc."
        if code in ("NoSuchKey", "404"):
            return f"{url}: not found"
        return f"{url}: object store error {code}: {err}"
    if isinstance(err, EndpointConnectionError):
        return f"{url}: cannot reach the object store at {_endpoint() or 'AWS'} ({type(err).__name__})"
    return f"{url}: object store error ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"


class Location:
    """A packed data set's place: a local folder or ``s3://BUCKET/PREFIX``.

    Args:
        root: The folder or URL.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.url = url_of(root).rstrip("/")
        self.remote = is_url(self.url)
        if self.remote:
            self.bucket, _, self.prefix = self.url[len("s3://") :].partition("/")
            if not self.bucket:
                raise DanError(f"{self.url}: no bucket name (use s3://BUCKET/PREFIX)")
        self._client: Any = None

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def join(self, *parts: str) -> str:
        """The URL or path of ``parts`` under this location."""
        return "/".join([self.url, *parts]) if self.remote else str(Path(self.url, *parts))

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def client(self) -> Any:
        """The boto3 S3 client (endpoint and credentials from the environment)."""
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise DanError(f"{self.url}: object storage needs boto3: pip install 'dan[stream]'") from None
            config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            self._client = boto3.client("s3", endpoint_url=_endpoint(), config=config)
        return self._client

    def read_bytes(self, name: str) -> bytes:
        """The bytes of file ``name`` under this location.

        Raises:
            DanError: Missing, unreadable, or the object store refused or could not be reached (one line).
        """
        if not self.remote:
            path = Path(self.join(name))
            try:
                return path.read_bytes()
            except OSError as err:
                raise DanError(f"{path}: {err.strerror or err}") from None
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except Exception as err:
            raise _s3_error(self.join(name), err) from None

    def put_file(self, local: Path, name: str) -> None:
        """Upload (or, locally, move) file ``local`` to ``name`` under this location."""
        if not self.remote:
            target = Path(self.join(name))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local), target)
            return
        try:
            self.client.upload_file(str(local), self.bucket, self._key(name))
        except Exception as err:
            raise _s3_error(self.join(name), err) from None

    def put_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` under this location (an object store: one PUT)."""
        if not self.remote:
            from dan.fileio import atomic_write

            atomic_write(self.join(name), data)
            return
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        except Exception as err:
            raise _s3_error(self.join(name), err) from None

    def delete(self, name: str) -> None:
        """Remove ``name`` under this location if it is there."""
        if not self.remote:
            Path(self.join(name)).unlink(missing_ok=True)
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as err:
            raise _s3_error(self.join(name), err) from None
