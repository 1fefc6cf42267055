"""Single PUTs of content held in memory, without a botocore client call (:class:`SignedPut`).

A ``put_object`` call spends about 3 ms of CPU per call on the client, most of it outside
signing and sending: parameter validation, serialization, some forty event hooks, the
response parser. For the small files a migration copies that is as much CPU as the
gateway's own work per PUT, on the same cores. A :class:`SignedPut` builds the request
itself, signs it with botocore's SigV4 signer (``S3SigV4Auth``) and sends it on an HTTP
session made the way botocore makes its own (``EndpointCreator``): about half the CPU.

What stays as it is with the client an :class:`~mediastore.blobs.s3.S3BlobStore` makes:

- where it goes: the bucket URL is the one the client resolves (endpoint, region and
  path-style addressing, asked of the client once), and the signing region is the client's;
- who signs: the session's credentials, frozen per request (refreshing ones refresh as
  they do in a client call); a client that does not sign with SigV4 gets no SignedPut;
- how it is sent: CA bundle (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``), proxies,
  timeouts, pool size, client certificate and TCP keep-alive are the client's settings,
  given to botocore's own HTTP session class, which also maps connection failures to
  botocore's exceptions;
- the payload is signed: ``X-Amz-Content-SHA256`` is the content's SHA-256, known from
  staging, so the server checks the body against it (as it checks ``Content-MD5``)
  instead of this host hashing the body once more to sign it;
- failures are what the client raises: a ``ClientError`` with the server's error code,
  message and HTTP status, or botocore's connection errors; transient ones (connection
  errors, 429/500/502/503/504, throttling, RequestTimeout) are retried as often as the
  client's retry settings allow (``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE``), with the
  jittered exponential backoff of botocore's standard mode.
"""

from __future__ import annotations

import random
import socket
import time
import xml.etree.ElementTree as ElementTree
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.endpoint import EndpointCreator  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.utils import ensure_boolean  # type: ignore[import-untyped]

#: Attempts per request when the client's settings name none (botocore's defaults).
DEFAULT_ATTEMPTS = {"legacy": 5, "standard": 3, "adaptive": 3}
#: Longest wait between two attempts, in seconds (botocore's standard mode).
MAX_BACKOFF = 20.0
#: Answers worth another attempt: by HTTP status, and by S3 error code.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "SlowDown",
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "BandwidthLimitExceeded",
})  # fmt: skip
SIGV4 = frozenset({None, "s3v4", "v4"})
#: The message of an error answer without a body (a HEAD's, a bare 412).
PHRASES = {status.value: status.phrase for status in HTTPStatus}


class _KnownPayloadAuth(S3SigV4Auth):  # type: ignore[misc]
    """SigV4 of S3 whose payload hash is given (``request.context["payload_sha256"]``)."""

    def payload(self, request: Any) -> str:
        return str(request.context["payload_sha256"])


class SignedPut:
    """PutObject of bytes in memory, for the bucket ``bucket`` of ``client``.

    Use :meth:`for_client`, which says None where a SignedPut could not send what the
    client would.
    """

    def __init__(
        self, *, bucket_url: str, region: str, credentials: Any, http: Any, attempts: int
    ) -> None:
        self._bucket_url = bucket_url.rstrip("/")
        self._region = region
        self._credentials = credentials
        self._http = http
        self._attempts = max(1, attempts)

    @classmethod
    def for_client(
        cls, session: Any, client: Any, bucket: str, *, bucket_region: str | None = None
    ) -> SignedPut | None:
        """A SignedPut that goes where ``client`` goes, as ``session``'s user.

        Args:
            session: The botocore session ``client`` was made from.
            client: A botocore S3 client (its endpoint, region and settings are used).
            bucket: The bucket every PUT goes to.
            bucket_region: The bucket's region if the server named it (HeadBucket's
                ``x-amz-bucket-region``; RGW names none).

        Returns:
            None if the client signs other than with SigV4, there are no credentials (its
            own calls then report why), or the bucket is in another region than the client
            signs for (the client follows S3's redirects; a SignedPut would be refused).
        """
        config = client.meta.config
        credentials = session.get_credentials()
        if config.signature_version not in SIGV4 or credentials is None:
            return None
        if bucket_region is not None and bucket_region != client.meta.region_name:
            return None
        try:
            # the URL the client resolves for this bucket (endpoint rules, addressing style)
            probe = urlsplit(
                client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"})
            )
        except NoCredentialsError:
            return None
        keepalive = config.tcp_keepalive or ensure_boolean(
            session.get_scoped_config().get("tcp_keepalive", False)
        )
        socket_options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        if keepalive:
            socket_options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        endpoint = EndpointCreator(client.meta.events).create_endpoint(
            client.meta.service_model,
            client.meta.region_name,
            client.meta.endpoint_url,
            verify=session.get_config_variable("ca_bundle"),
            timeout=(config.connect_timeout, config.read_timeout),
            max_pool_connections=config.max_pool_connections,
            proxies=config.proxies,
            socket_options=socket_options,
            client_cert=config.client_cert,
            proxies_config=config.proxies_config,
        )
        retries = config.retries or {}
        attempts = retries.get("total_max_attempts") or DEFAULT_ATTEMPTS.get(
            retries.get("mode", "legacy"), 3
        )
        return cls(
            bucket_url=f"{probe.scheme}://{probe.netloc}{probe.path.removesuffix('/k')}",
            region=client.meta.region_name,
            credentials=credentials,
            http=endpoint.http_session,
            attempts=attempts,
        )

    def put(self, key: str, body: bytes, *, sha256: str, headers: dict[str, str]) -> None:
        """PUT ``body`` at ``key``, with ``headers`` (Content-MD5, metadata, conditions).

        Args:
            key: The object key.
            body: The content.
            sha256: Its SHA-256 (hex), signed as the payload's hash.
            headers: Further request headers.

        Raises:
            ClientError: the server refused it (``response`` as botocore's).
            BotoCoreError: it could not be sent (connection errors, after the retries).
        """
        url = f"{self._bucket_url}/{quote(key, safe='/~')}"
        headers = {**headers, "Content-Length": str(len(body))}
        attempt = 1
        while True:
            request = AWSRequest(method="PUT", url=url, data=body, headers=headers)
            request.context["payload_sha256"] = sha256
            _KnownPayloadAuth(
                self._credentials.get_frozen_credentials(), "s3", self._region
            ).add_auth(request)
            try:
                response = self._http.send(request.prepare())
            except (BotoConnectionError, HTTPClientError):
                if attempt >= self._attempts:
                    raise
            else:
                if response.status_code < 300:
                    return
                error = _client_error(response)
                code = error.response["Error"]["Code"]
                retry = response.status_code in RETRY_STATUSES or code in RETRY_CODES
                if not retry or attempt >= self._attempts:
                    raise error
            time.sleep(min(MAX_BACKOFF, random.random() * 2 ** (attempt - 1)))
            attempt += 1

    def close(self) -> None:
        """Close the HTTP session's connections."""
        self._http.close()


def _client_error(response: Any) -> ClientError:
    """The ClientError a botocore call would raise for this error answer."""
    status = int(response.status_code)
    code, message = str(status), PHRASES.get(status, "")
    if response.content:
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError:
            pass
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or message
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {k.lower(): v for k, v in response.headers.items()},
            },
        },
        "PutObject",
    )
