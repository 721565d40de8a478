"""OpenAI's published OpenAPI description (shared/specs), as JSON-schema validators."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "openai-openapi.yaml"
# Ours, not OpenAI's: the studio serves its own models, sizes and lengths under OpenAI's shapes.
OUR_OWN = ("VideoSize", "VideoSeconds")


@cache
def components() -> dict[str, Any]:
    if not SPEC.exists():
        raise FileNotFoundError(f"{SPEC} is missing: the shared specs must sit beside the repository")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open() as handle:
        return yaml.load(handle, Loader=loader)["components"]


def validator(schema: str, *, our_names: bool = False) -> Draft202012Validator:
    """A validator for one of OpenAI's component schemas; ``our_names`` lets sizes and seconds be
    any string (the shape stays OpenAI's)."""
    parts = components()
    if our_names:
        parts = copy.deepcopy(parts)
        for name in OUR_OWN:
            parts["schemas"][name] = {"type": "string"}
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": parts})
