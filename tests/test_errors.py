"""One error tree: every class knows its HTTP status and CLI exit code, and the tree drawn in
``errors``' docstring is the tree the code has."""

from __future__ import annotations

import re

import pytest

from mediagen import errors
from mediagen.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_REFUSED,
    Conflict,
    Forbidden,
    IllegalTransition,
    IngestError,
    InvalidInput,
    MediagenError,
    NotFound,
    ProviderError,
    RateLimited,
    RefusedURL,
    StorageError,
    TooLarge,
    Unauthorized,
    exit_code,
    http_status,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput("size", "too big", ["1x1"]), 400, EXIT_REFUSED),
        (RefusedURL("leads to 10.0.0.1"), 400, EXIT_REFUSED),
        (Unauthorized("no key"), 401, EXIT_REFUSED),
        (Forbidden("not yours"), 403, EXIT_REFUSED),
        (NotFound("no job"), 404, EXIT_REFUSED),
        (Conflict("already ended"), 409, EXIT_REFUSED),
        (IllegalTransition("a failed job cannot become running"), 409, EXIT_REFUSED),
        (TooLarge("body over 1 MiB"), 413, EXIT_REFUSED),
        (RateLimited("too many waiting", retry_after_s=3), 429, EXIT_FAILED),
        (ProviderError("rate limited", retryable=True), 502, EXIT_FAILED),
        (IngestError("not media"), 502, EXIT_FAILED),
        (StorageError("bucket gone"), 503, EXIT_FAILED),
        (MediagenError("something"), 500, EXIT_FAILED),
        (RuntimeError("a bug"), 500, EXIT_INTERNAL),
    ],
)
def test_each_error_knows_its_answer(error: Exception, status: int, code: int) -> None:
    assert (http_status(error), exit_code(error)) == (status, code)


def test_the_drawn_tree_is_the_real_one() -> None:
    drawn = {}
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^\s*([│├└─ ]*)(\w+)\s+(\d{3})\s+exit (\d)", line)
        if match:
            drawn[match.group(2)] = (len(match.group(1)), int(match.group(3)), int(match.group(4)))
    classes = {c.__name__: c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, MediagenError)}
    assert set(drawn) == set(classes)
    for name, (_, status, code) in drawn.items():
        assert (classes[name].http_status, classes[name].exit_code) == (status, code), name
    depth = {name: indent for name, (indent, _, _) in drawn.items()}
    assert all(depth[c.__mro__[1].__name__] < depth[name] for name, c in classes.items() if c is not MediagenError)
