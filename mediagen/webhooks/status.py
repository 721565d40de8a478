"""Where a webhook delivery stands, and how one attempt at it ended."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """Stored on the delivery row."""

    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # refused for good, or retried for the whole retry window
    GONE = "gone"  # the receiver answered 410, or its job was deleted: nothing more is sent


class AttemptOutcome(StrEnum):
    """What one attempt did, as the worker counts it."""

    DELIVERED = "delivered"
    RETRYING = "retrying"  # failed this time; another attempt is scheduled
    FAILED = "failed"
    GONE = "gone"
    STALE = "stale"  # our lease had run out and another worker took the delivery over: nothing written
