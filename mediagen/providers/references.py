"""How reference images travel to a provider, shared by every remote client: as a file part in a
multipart request, as a ``data:`` URL inside JSON, or as a URL the provider fetches itself.

Which one a provider takes is its own business; the encodings are the same everywhere, so they
live here once.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from ..catalog import ModelSpec
from ..errors import InvalidInput
from .base import Reference

# A multipart file part as httpx takes it: (file name, bytes, content type).
FilePart = tuple[str, bytes, str]


def file_part(ref: Reference) -> FilePart:
    """The reference as an uploaded file; the content type tells the provider what it is (some
    refuse ``application/octet-stream``)."""
    return (ref.name, ref.read(), ref.content_type)


def data_url(ref: Reference, data: bytes | None = None) -> str:
    """``data:image/png;base64,...``: the reference inline, for JSON bodies (``data``: its bytes,
    when the caller has read them already)."""
    payload = ref.read() if data is None else data
    return f"data:{ref.content_type};base64,{base64.b64encode(payload).decode('ascii')}"


def url_or_data_url(ref: Reference) -> str:
    """The reference's own URL when the provider can fetch it (a bucket's), else inline: a URL keeps
    the request small and spares a copy of the bytes through this machine."""
    return ref.url if ref.url is not None else data_url(ref)


def by_field(model: ModelSpec, references: Sequence[Reference]) -> dict[str, Reference]:
    """The references keyed by the provider's own field name for each (``ImageInput.field``).

    Roles the model does not declare were refused when the job was created; meeting one here means
    a job made before the model's declarations changed, so it is refused again rather than dropped
    silently (a prompt sent without its image would make something else than was asked)."""
    fields: dict[str, Reference] = {}
    for ref in references:
        declared = model.image_input(ref.role)
        if declared is None:
            allowed = [i.role for i in model.image_inputs] or "none"
            raise InvalidInput(ref.role, f"{model.name} does not take a {ref.role}", allowed)
        fields.setdefault(declared.field, ref)
    return fields
