"""One error tree for the whole pipeline, with a retry marker orthogonal to the branches.

::

    PipelineError
     +-- ConfigError              bad file, bad key, missing secret (exit code 2)
     +-- SourceError              the MAN API failed for good (names URL and status)
     +-- DecodeError              a page that is not JSON of the expected shape
     +-- SinkError                a target failed for good
     |    +-- AuthError           401/403: a configuration problem, never retried
     +-- StateError               the state store could not be read or written
     +-- TLSError                 a certificate is not trusted: never retried
     +-- RedirectError            a redirect not followed (another origin, or not a GET)
     +-- ResponseTooLargeError    an answer larger than max_response_mb once decoded
     +-- ThrottledError           a Retry-After longer than retry.max_seconds
     +-- TokenError               no token from a token endpoint after the retries
    Retryable                     marker mixin: the operation may succeed if tried again
     +-- TransientHTTPError       (also a PipelineError) 429, 5xx, timeouts, connection errors

The last five stop the source (the pass aborts) or the target (for the pass), as an
:class:`AuthError` does: trying again cannot help.

Constructors take facts (target, URL, status, retry delay) and compose the message, so no
call site writes prose and no message carries customer data beyond a record's id. A URL is
kept and shown through :func:`~pipeline.urls.safe_url`: never a password, query or fragment.
"""

from __future__ import annotations

from pipeline.urls import safe_url

__all__ = [
    "AuthError",
    "ConfigError",
    "DecodeError",
    "HTTPStatusError",
    "PipelineError",
    "RedirectError",
    "ResponseTooLargeError",
    "Retryable",
    "SinkError",
    "SourceError",
    "StateError",
    "TLSError",
    "ThrottledError",
    "TokenError",
    "TransientHTTPError",
]


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class Retryable:
    """Marker: the failed operation may succeed when tried again."""

    retry_after: float | None = None


class ConfigError(PipelineError):
    """The configuration is invalid; ``path`` names the offending key when known."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class SourceError(PipelineError):
    """The source could not be read."""


class DecodeError(PipelineError):
    """A response body is not what the API promises (not JSON, wrong envelope)."""

    def __init__(self, url: str, detail: str) -> None:
        url = safe_url(url)
        self.url = url
        self.detail = detail
        super().__init__(f"cannot decode response of {url}: {detail}")


class SinkError(PipelineError):
    """A target refused or failed a request for good."""

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        super().__init__(f"{target}: {message}")


class StateError(PipelineError):
    """The state store failed."""


class TLSError(PipelineError):
    """The server's certificate could not be verified; a configuration problem (``ca_bundle``)."""

    def __init__(self, url: str, detail: str) -> None:
        url = safe_url(url)
        self.url = url
        super().__init__(
            f"{url}: TLS certificate not trusted ({detail}); add its CA with ca_bundle"
        )


class HTTPStatusError(PipelineError):
    """A request ended with a status that is not retried (4xx other than 429)."""

    def __init__(self, method: str, url: str, status: int, detail: str = "") -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.status = status
        self.detail = detail
        tail = f": {detail}" if detail else ""
        super().__init__(f"{method} {url} answered {status}{tail}")


class AuthError(HTTPStatusError):
    """401 or 403: credentials or permissions are wrong; a configuration problem."""


class TransientHTTPError(Retryable, PipelineError):
    """A request failed in a way that may pass on retry: 429, 5xx, timeout, connection error."""

    def __init__(
        self,
        method: str,
        url: str,
        *,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        what = f"answered {status}" if status is not None else (reason or "failed")
        super().__init__(f"{method} {url} {what}")


class TokenError(PipelineError):
    """No token could be had from a token endpoint after the retries (down, 5xx, timeouts):
    the target cannot write anything this pass, so it stops, as for a refused token."""

    def __init__(self, target: str, url: str, cause: str) -> None:
        self.target = target
        url = safe_url(url)
        self.url = url
        super().__init__(f"{target}: no token from {url} after the retries: {cause}")


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


class RedirectError(PipelineError):
    """A redirect that is not followed: to another origin (no credential is ever sent to one),
    of a request other than a GET (its body would be sent again), or one too many."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.status = status
        super().__init__(f"{method} {url} answered {status}, a redirect not followed: {detail}")


class ResponseTooLargeError(PipelineError):
    """An answer grew past the cap on decoded bodies (``max_response_mb``); it is not read on."""

    def __init__(self, method: str, url: str, limit_bytes: int) -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.limit_bytes = limit_bytes
        mb, rest = divmod(limit_bytes, 2**20)
        limit = f"{mb} MB" if not rest else f"{limit_bytes} bytes"
        super().__init__(
            f"{method} {url} answered more than {limit} (decoded): max_response_mb caps it"
        )


class ThrottledError(PipelineError):
    """The server asked for a pause (``Retry-After``) longer than ``retry.max_seconds``: the
    source or target stops for the pass instead of asking again sooner than it was told."""

    def __init__(
        self, method: str, url: str, status: int | None, retry_after: float, max_seconds: float
    ) -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.status = status
        self.retry_after = retry_after
        self.max_seconds = max_seconds
        super().__init__(
            f"{method} {url} answered {status} asking for a pause of {_seconds(retry_after)} s "
            f"(Retry-After), longer than retry.max_seconds = {_seconds(max_seconds)} s: "
            "not asked again this pass"
        )
