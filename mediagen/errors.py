"""A small error tree. The UI and the CLI show any ``MediagenError`` as a clear message."""

from __future__ import annotations

from collections.abc import Iterable


class MediagenError(Exception):
    """Base of every error we expect and explain; ``code`` is stable, ``str()`` is for people."""

    code = "error"

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


class NotFound(MediagenError):
    code = "not_found"


class IllegalTransition(MediagenError):
    """A status change the job state machine does not allow."""

    code = "illegal_transition"


class ProviderError(MediagenError):
    """The provider said no, or said something we cannot use.

    ``retryable`` marks transient failures (rate limits, 5xx, network) that polling and
    downloading may try again; a create call is never re-sent on its own.
    """

    code = "provider_error"

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
