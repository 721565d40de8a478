"""The model catalogue: which provider serves which model, and the parameters each accepts.

Validation lives here so that the UI, the CLI and the tests refuse the same inputs with the same
words: the field, the problem and the allowed values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .jobs.status import JobKind

_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


@dataclass(frozen=True)
class Param:
    """One option a model accepts. ``normalize`` returns the canonical value or raises."""

    name: str
    help: str = ""

    @property
    def default(self) -> Any:
        return None

    def normalize(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class IntRange(Param):
    low: int = 0
    high: int = 0
    default_value: int | None = None

    @property
    def default(self) -> int | None:
        return self.default_value

    def normalize(self, value: Any) -> int | None:
        if value is None:
            return self.default_value
        try:
            number = int(value)
            if isinstance(value, float) and number != value:
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidInput(self.name, f"{value!r} is not a whole number", self.describe()) from None
        if not self.low <= number <= self.high:
            raise InvalidInput(self.name, f"{number} is out of range", self.describe())
        return number

    def describe(self) -> str:
        return f"{self.low}–{self.high}"


@dataclass(frozen=True)
class Choice(Param):
    choices: tuple[str, ...] = ()
    default_value: str | None = None

    @property
    def default(self) -> str | None:
        return self.default_value

    def normalize(self, value: Any) -> str | None:
        if value is None:
            return self.default_value
        text = str(value).strip()
        # As people type them (WEBP, High), kept in the spelling the provider expects.
        chosen = next((c for c in self.choices if c.casefold() == text.casefold()), None)
        if chosen is None:
            raise InvalidInput(self.name, f"{text!r} is not offered", self.choices)
        return chosen


@dataclass(frozen=True)
class Size(Param):
    """``WxH``. Either a fixed list (``choices``) or any size within the bounds (``presets`` are
    what a form offers first)."""

    choices: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    min_side: int = 1
    max_width: int = 0
    max_height: int = 0
    max_pixels: int | None = None
    multiple_of: int = 1
    default_value: str = ""

    @property
    def default(self) -> str:
        return self.default_value

    @property
    def options(self) -> tuple[str, ...]:
        return self.choices or self.presets

    def normalize(self, value: Any) -> str:
        if value is None:
            return self.default_value
        match = _SIZE_RE.match(str(value))
        if not match:
            raise InvalidInput(self.name, f"{value!r} is not WIDTHxHEIGHT", self.describe())
        width, height = int(match[1]), int(match[2])
        size = f"{width}x{height}"
        if self.choices:
            if size not in self.choices:
                raise InvalidInput(self.name, f"{size} is not offered by this model", self.choices)
            return size
        fits = (
            self.min_side <= width <= self.max_width
            and self.min_side <= height <= self.max_height
            and (self.max_pixels is None or width * height <= self.max_pixels)
            and width % self.multiple_of == 0
            and height % self.multiple_of == 0
        )
        if not fits:
            raise InvalidInput(self.name, f"{size} is not allowed for this model", self.describe())
        return size

    def describe(self) -> str:
        if self.choices:
            return ", ".join(self.choices)
        text = f"width {self.min_side}–{self.max_width}, height {self.min_side}–{self.max_height}"
        if self.max_pixels:
            text += f", at most {self.max_pixels:,} pixels"
        if self.multiple_of > 1:
            text += f", both multiples of {self.multiple_of}"
        return text


def parse_size(size: str) -> tuple[int, int]:
    width, height = size.lower().split("x")
    return int(width), int(height)


@dataclass(frozen=True)
class ImageInput:
    """An image a model can start from, as its provider takes it: checked before anything is sent
    (``jobs.references``), so what a model cannot take is refused naming the field.

    ``role`` is ours and the same for every provider: ``image`` is the picture to start from (a
    video's first frame, the image an edit or variation transforms), ``mask`` where an edit may
    paint (transparent pixels). ``field`` is what the provider calls it in its request.
    """

    role: str
    field: str
    required: bool = False
    formats: tuple[str, ...] = ("png", "jpeg", "webp")  # as ``filetype`` names them, from magic bytes
    max_bytes: int = 20 * 1024 * 1024
    min_side: int = 1
    max_side: int = 8192
    square: bool = False
    # Longest side over shortest side at most this (MiniMax: 2:5 to 5:2 is 2.5); None: any shape.
    max_aspect: float | None = None
    # The mask must have the image's own size; a first frame is fitted to the video's size.
    same_size_as_image: bool = False
    # What the model does with it, for people (a form's help); ``describe`` stays the constraints,
    # the "allowed" of a refusal.
    help: str = ""

    def describe(self) -> str:
        text = f"{', '.join(f.upper() for f in self.formats)} up to {self.max_bytes // (1024 * 1024)} MB"
        text += f", sides {self.min_side}–{self.max_side} px"
        if self.square:
            text += ", square"
        if self.max_aspect:
            text += f", at most {self.max_aspect:g}:1 either way"
        if self.same_size_as_image:
            text += ", the size of the image"
        return text


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    kind: JobKind
    label: str
    params: tuple[Param, ...] = ()
    max_prompt_chars: int | None = None
    # What the provider calls the model, when it differs from our catalogue name.
    provider_model: str | None = None
    # Checks across options (e.g. "1080P only at 6 s"); each raises InvalidInput.
    rules: tuple[Callable[[dict[str, Any]], None], ...] = ()
    # The images it can start from (image-to-video, edits); none for text-only models.
    image_inputs: tuple[ImageInput, ...] = ()

    @property
    def remote_name(self) -> str:
        return self.provider_model or self.name

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def image_input(self, role: str) -> ImageInput | None:
        return next((i for i in self.image_inputs if i.role == role), None)

    @property
    def needs_image(self) -> bool:
        """Whether it only works from an image (an image-to-video model, say)."""
        return any(i.required for i in self.image_inputs)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if p.default is not None}

    def prompt_limit(self, ceiling: int) -> int:
        """Longest prompt accepted for this model: its provider's limit, capped by the studio's
        ``ceiling`` (``MEDIAGEN_MAX_PROMPT_CHARS``)."""
        return min(self.max_prompt_chars or ceiling, ceiling)


class Catalog:
    """Every model we know, keyed by name; built from the provider registry. ``aliases`` are other
    names for catalogue models (``MEDIAGEN_MODEL_ALIASES``): ``get`` resolves them, so callers
    written for another service's model names work unchanged."""

    def __init__(self, models: Iterable[ModelSpec], aliases: Mapping[str, str] | None = None) -> None:
        self._models: dict[str, ModelSpec] = {}
        for spec in models:
            if spec.name in self._models:
                raise ValueError(f"model {spec.name!r} is registered twice")
            self._models[spec.name] = spec
        self.aliases: dict[str, str] = dict(aliases or {})

    def __contains__(self, name: str) -> bool:
        return name in self._models or name in self.aliases

    def models(self, kind: JobKind | str | None = None) -> list[ModelSpec]:
        return [m for m in self._models.values() if kind is None or m.kind == kind]

    def serves(self, name: str) -> bool:
        """Whether ``name`` is one of the catalogue's own model names (not an alias)."""
        return name in self._models

    def aliases_of(self, name: str) -> list[str]:
        return sorted(alias for alias, target in self.aliases.items() if target == name)

    def get(self, name: str, kind: JobKind | str | None = None) -> ModelSpec:
        spec = self._models.get(self.aliases.get(name, name))
        if spec is None or (kind is not None and spec.kind != kind):
            allowed = [m.name for m in self.models(kind)] + sorted(
                a for a, target in self.aliases.items() if kind is None or self._models[target].kind == kind
            )
            raise InvalidInput("model", f"unknown {kind or ''} model {name!r}".replace("  ", " "), allowed)
        return spec


def check_aliases(aliases: Mapping[str, str], configured: Catalog, known: Catalog) -> None:
    """Refuse, naming it, an alias that leads nowhere or would hide a model served here."""
    for alias, target in aliases.items():
        where = f"alias {alias!r} → {target!r}"
        if not alias.strip() or alias != alias.strip():
            raise InvalidInput("MEDIAGEN_MODEL_ALIASES", f"{where}: an alias must be a name without spaces around it")
        if configured.serves(alias):
            raise InvalidInput(
                "MEDIAGEN_MODEL_ALIASES", f"{where} would hide the configured model {alias!r}; pick another alias"
            )
        if not configured.serves(target):
            problem = "is not configured here" if known.serves(target) else "is not a model of any provider"
            raise InvalidInput(
                "MEDIAGEN_MODEL_ALIASES", f"{where}: {target!r} {problem}", [m.name for m in configured.models()]
            )


def validate_prompt(prompt: Any, limit: int) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt", "must not be empty", f"1–{limit} characters")
    text = prompt.strip()
    if len(text) > limit:
        raise InvalidInput("prompt", f"is {len(text):,} characters long", f"at most {limit:,}")
    return text


def validate_params(spec: ModelSpec, params: dict[str, Any]) -> dict[str, Any]:
    """Canonical parameters for ``spec``, defaults filled in; unknown names are refused."""
    known = {p.name for p in spec.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInput(unknown[0], f"is not an option of {spec.name}", sorted(known) or "none")
    result: dict[str, Any] = {}
    for param in spec.params:
        value = param.normalize(params.get(param.name))
        if value is not None:
            result[param.name] = value
    for rule in spec.rules:
        rule(result)
    return result


def model_choices(models: Sequence[ModelSpec]) -> list[str]:
    return [m.name for m in models]
