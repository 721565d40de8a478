"""What a provider is: a handful of methods, plus what it hands back.

Image providers answer synchronously (``generate``). Video providers run remote tasks:
``submit`` returns the provider's task id, ``poll`` reports progress and, at the end, where the
media is, and ``cancel`` stops the task where the provider can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..catalog import ModelSpec
from .settings import ProviderSettings

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class MediaSource:
    """Where one output is. Exactly one of ``data``, ``b64``, ``url`` or ``path`` is set;
    ingest turns each into the same stream of bytes."""

    data: bytes | None = None
    b64: str | None = None
    url: str | None = None
    path: Path | None = None
    # Sent with ``url`` only (some providers' content endpoints need the bearer header).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A provider-made still for a video (e.g. OpenAI's thumbnail variant), used as our poster.
    poster: MediaSource | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.data, self.b64, self.url, self.path) if x is not None]
        if len(given) != 1:
            raise ValueError("a MediaSource needs exactly one of data, b64, url or path")

    def describe(self) -> str:
        if self.url is not None:
            return self.url.split("?", 1)[0]  # query strings often carry signatures
        if self.path is not None:
            return self.path.name
        return "inline base64" if self.b64 is not None else "inline bytes"


@dataclass(frozen=True)
class Reference:
    """An image a generation starts from (``catalog.ImageInput``), checked and kept in our storage
    with its job. Providers read its bytes (to upload them, or as a ``data:`` URL), or pass
    ``url`` where the provider fetches images itself and our storage is reachable from it."""

    role: str  # ``catalog.ImageInput.role``: image, mask
    content_type: str
    width: int
    height: int
    read: Callable[[], bytes] = field(repr=False)
    url: str | None = None  # public (CDN) or presigned; None when only this machine can reach it
    name: str = "image.png"  # a file name for multipart uploads


def reference(references: Sequence[Reference], role: str) -> Reference | None:
    return next((r for r in references if r.role == role), None)


@dataclass(frozen=True)
class ImageResult:
    outputs: list[MediaSource]
    usage: dict[str, Any] = field(default_factory=dict)
    revised_prompt: str | None = None  # what the provider actually drew from, when it says
    request_id: str | None = None


@dataclass(frozen=True)
class Submitted:
    """A task the provider accepted."""

    task_id: str
    request_id: str | None = None


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class PollResult:
    state: TaskState
    progress: int = 0
    outputs: list[MediaSource] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    # The provider's own pacing hint; a worker waits at least this long before asking again.
    retry_after_s: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ImageProvider(Protocol):
    def generate(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> ImageResult:
        """Make images; with ``references`` (only roles ``model.image_inputs`` declares), an edit
        or variation of the ``image`` one."""
        ...


@runtime_checkable
class VideoProvider(Protocol):
    def submit(
        self, model: ModelSpec, prompt: str, params: dict[str, Any], references: Sequence[Reference] = ()
    ) -> Submitted:
        """Start a task; with a ``references`` ``image``, the video starts from it (first frame)."""
        ...

    def poll(self, model: ModelSpec, task_id: str) -> PollResult: ...

    def cancel(self, model: ModelSpec, task_id: str) -> bool:
        """Stop the task at the provider; ``False`` when the provider has no way to."""
        ...


@dataclass(frozen=True)
class ProviderEntry:
    """A provider as the registry knows it: its settings (read from its own variables), how to
    build it from them and the studio's settings, and the models it serves."""

    name: str
    label: str
    settings: type[ProviderSettings]
    factory: Callable[[Any, Settings], object]
    # Some providers' model lists come from their settings (Replicate's owner/name lists).
    models: Callable[[Any], Sequence[ModelSpec]]
