"""One error tree for the whole pipeline, with two markers orthogonal to its branches.

::

    PipelineError
     +-- ConfigError              bad file, bad key, missing secret (exit code 2)       Fatal
     +-- SourceError              the MAN API failed for good (names URL and status)
     +-- DecodeError              a body that is not JSON of the expected shape
     +-- SinkError                a target failed a request for good
     +-- StateError               the state store could not be read or written           Fatal
     |    +-- StateHeldError      another process holds the state for its pass
     +-- TLSError                 a certificate is not trusted                           Fatal
     +-- HTTPStatusError          a 4xx other than 429, not retried
     |    +-- AuthError           401/403: credentials or permissions                    Fatal
     |    +-- UnsupportedError    the server refuses the only safe way to write          Fatal
     +-- TransientHTTPError       429, 5xx, timeouts, connection errors              Retryable
     +-- RedirectError            a redirect not followed (another origin, not a GET)    Fatal
     +-- ResponseTooLargeError    an answer larger than max_response_mb once decoded     Fatal
     +-- ThrottledError           a Retry-After longer than retry.max_seconds            Fatal
     +-- TokenError               no token from a token endpoint after the retries       Fatal

The markers are what the code checks, never the branches:

* :class:`Retryable`: the operation may pass if tried again. The HTTP client retries exactly
  these (``except Retryable`` in :meth:`~pipeline.http.HttpClient.request`).
* :class:`Fatal`: trying again this pass cannot help. A target that meets one stops for the
  pass (:meth:`~pipeline.targets.base.HttpTarget.failed` raises it on instead of
  dead-lettering the batch); the source that meets one aborts the pass. Any other error of a
  target's request fails that batch only: its records are dead-lettered, sent again next pass.

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
    "Fatal",
    "HTTPStatusError",
    "PipelineError",
    "RedirectError",
    "ResponseTooLargeError",
    "Retryable",
    "SinkError",
    "SourceError",
    "StateError",
    "StateHeldError",
    "TLSError",
    "ThrottledError",
    "TokenError",
    "TransientHTTPError",
    "UnsupportedError",
    "first_error",
    "unexpected",
]


class PipelineError(Exception):
    """Root of every error the pipeline raises on purpose."""


class Retryable(Exception):
    """Marker: the failed request may pass when sent again (after ``retry_after`` seconds,
    when the server said)."""

    method: str
    url: str
    status: int | None
    retry_after: float | None = None


class Fatal(Exception):
    """Marker: trying again this pass cannot help; it stops the target (or the source)."""


class ConfigError(Fatal, PipelineError):
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


class StateError(Fatal, PipelineError):
    """The state store failed."""


class StateHeldError(StateError):
    """Another process holds the state for its pass (a SQLite file's lock, a PostgreSQL
    advisory lock): a pass waits for nobody; a ``serve`` replica on PostgreSQL stands by."""


class TLSError(Fatal, PipelineError):
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


class AuthError(Fatal, HTTPStatusError):
    """401 or 403: credentials or permissions are wrong; a configuration problem."""


class UnsupportedError(Fatal, HTTPStatusError):
    """The server refuses the only way the pipeline may write (a 415 of a merge patch, say):
    a setting of the server, the same for every record."""


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


class TokenError(Fatal, PipelineError):
    """No token could be had from a token endpoint after the retries (down, 5xx, timeouts):
    the target cannot write anything this pass, so it stops, as for a refused token."""

    def __init__(self, target: str, url: str, cause: str) -> None:
        self.target = target
        url = safe_url(url)
        self.url = url
        super().__init__(f"{target}: no token from {url} after the retries: {cause}")


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


class RedirectError(Fatal, PipelineError):
    """A redirect that is not followed: to another origin (no credential is ever sent to one),
    of a request other than a GET (its body would be sent again), or one too many."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        self.method = method
        url = safe_url(url)
        self.url = url
        self.status = status
        super().__init__(f"{method} {url} answered {status}, a redirect not followed: {detail}")


class ResponseTooLargeError(Fatal, PipelineError):
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


class ThrottledError(Fatal, PipelineError):
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


def first_error(group: BaseExceptionGroup[PipelineError]) -> BaseException:
    """The first error itself, however deep the task groups nested it (``except*`` keeps the
    nesting: its message would be "unhandled errors in a TaskGroup")."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def unexpected(exc: BaseException) -> str:
    """What to say of an exception outside the tree (a bug in a target's code, say): its type
    and where it was raised, never its message, which may quote a record or a secret."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = ""
    if frame is not None:
        code = frame.tb_frame.f_code
        where = f" in {code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno})"
    return f"unexpected {type(exc).__name__}{where}: a bug, its message is not shown"
