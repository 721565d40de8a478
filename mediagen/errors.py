"""Every error we expect and explain, in one tree.

Each class knows the HTTP status an API answers with and the exit code the CLI ends with, so the
CLI, the HTTP routes and the pages map errors in one place (``http_status``, ``exit_code``). The
message (``str()``) is written for people; ``code`` is stable for programs.

    MediagenError            500  exit 1   something we could not do, and why
    ├── InvalidInput         400  exit 2   a value is refused: names the field and what is allowed
    ├── RefusedURL           400  exit 2   a URL leads where we may not connect (not public, bad scheme)
    ├── Unauthorized         401  exit 2   no credentials, or credentials we do not know
    ├── Forbidden            403  exit 2   the user's role or ownership does not allow it
    ├── NotFound             404  exit 2   no such job, asset, collection or key
    ├── Conflict             409  exit 2   the thing exists but its state does not allow this
    │   └── IllegalTransition          409  exit 2   a status change the job state machine forbids
    ├── TooLarge             413  exit 2   a request body or upload over its limit
    ├── RateLimited          429  exit 1   not now: try again after ``retry_after_s``
    ├── ProviderError        502  exit 1   the provider said no, or sent something we cannot use
    ├── IngestError          502  exit 1   provider output we could not store (too big, not media)
    ├── DatabaseError        503  exit 1   our database is damaged, full, locked or out of reach
    │   ├── DatabaseMissing            503  exit 2   gone from beside earlier media: refused, not made anew
    │   └── DatabaseUnavailable        503  exit 1   the database server does not answer now: try again shortly
    └── StorageError         503  exit 1   our storage refused or could not be reached

Exit code 2 means "the request was refused; nothing was created or changed", 1 means "we tried and
it failed" (a generation that failed is still recorded as a failed job with its reason).
Anything else is a bug: the CLI prints one line naming it (``--verbose`` shows the traceback),
the pages show Streamlit's redacted notice, HTTP answers 500, and the traceback goes to the log.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERNAL = 3


class MediagenError(Exception):
    """Base of every error we expect and explain; ``code`` is stable, ``str()`` is for people."""

    code = "error"
    http_status = 500
    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(MediagenError):
    """The request was refused before anything was stored; names the field and what is allowed."""

    code = "invalid_input"
    http_status = 400
    exit_code = EXIT_REFUSED

    def __init__(self, field: str, problem: str, allowed: Iterable[object] | str | None = None):
        self.field = field
        self.problem = problem
        if allowed is None:
            self.allowed = None
        elif isinstance(allowed, str):
            self.allowed = allowed
        else:
            self.allowed = ", ".join(str(a) for a in allowed)
        text = f"{field}: {problem}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        super().__init__(text)


class RefusedURL(MediagenError):
    """An outbound URL that leads somewhere we may not connect; see ``netguard``."""

    code = "url_refused"
    http_status = 400
    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # may pass later (the host does not resolve now); else never will


class Unauthorized(MediagenError):
    code = "unauthorized"
    http_status = 401
    exit_code = EXIT_REFUSED


class Forbidden(MediagenError):
    """The signed-in user's role or ownership does not allow this."""

    code = "forbidden"
    http_status = 403
    exit_code = EXIT_REFUSED


class NotFound(MediagenError):
    code = "not_found"
    http_status = 404
    exit_code = EXIT_REFUSED


class Conflict(MediagenError):
    """The thing exists, but its state does not allow this (cancel a finished job, retry a running one)."""

    code = "conflict"
    http_status = 409
    exit_code = EXIT_REFUSED


class IllegalTransition(Conflict):
    """A status change the job state machine does not allow."""

    code = "illegal_transition"


class TooLarge(MediagenError):
    """A request body or upload larger than we accept; names the limit, and the field when one
    part of the request (an uploaded image) is what is too large."""

    code = "too_large"
    http_status = 413
    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class RateLimited(MediagenError):
    """Not now: too much is waiting (here, or at the provider). ``retry_after_s`` says when to
    try again; HTTP answers carry it as ``Retry-After``."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: float = 10.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class ProviderError(MediagenError):
    """The provider said no, or said something we cannot use.

    ``retryable`` marks transient failures (rate limits, 5xx, network) that polling and
    downloading may try again; a create call is never re-sent on its own.
    """

    code = "provider_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class IngestError(MediagenError):
    """Provider output that could not be stored: too large, not media, undecodable."""

    code = "invalid_output"
    http_status = 502


class StorageError(MediagenError):
    """Our own storage refused a request or could not be reached."""

    code = "storage_error"
    http_status = 503


class DatabaseError(MediagenError):
    """Our database could not be used (a damaged file, a full disk, a lock held too long); the
    message names the database and what to do. A query we got wrong is a bug, not this."""

    code = "database_error"
    http_status = 503


class DatabaseMissing(DatabaseError):
    """The database file is missing where media from earlier jobs lies: it was deleted or moved.
    Nothing is created; a new, empty database there is made only when asked for."""

    code = "database_missing"
    exit_code = EXIT_REFUSED


class DatabaseUnavailable(DatabaseError):
    """The database server does not answer now (down, restarting, the connection cut). The
    transaction it interrupted was rolled back (or, cut during its commit, kept whole): trying
    again is safe. Workers wait for the server and go on by themselves."""

    code = "database_unavailable"


def http_status(exc: BaseException) -> int:
    """The status an HTTP answer carries for ``exc``: its class's, or 500 for anything unexplained."""
    return exc.http_status if isinstance(exc, MediagenError) else 500


def exit_code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, MediagenError) else EXIT_INTERNAL
