"""Other formats of a stored asset, made on demand and cached in storage beside the original.

Images: PNG, JPEG, WebP. Videos: MP4, WebM (VP9), and short animated GIF / WebP previews.
A derived key is deterministic (``media.keys``), so a second request is a lookup, and deleting an
asset can find every file made from it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, cast

import av
from av.video.stream import VideoStream
from PIL import Image

from ..db.tables import Asset
from ..errors import InvalidInput
from ..jobs.status import JobKind
from ..storage.base import Storage
from . import keys

PREVIEW_SECONDS = 3.0
PREVIEW_FPS = 10
PREVIEW_WIDTH = 320


@dataclass(frozen=True)
class Variant:
    suffix: str  # what the derived key ends with (``keys.DERIVED_SUFFIXES``)
    content_type: str
    convert: Callable[[Path, Path], None]


def _image_to(fmt: str) -> Callable[[Path, Path], None]:
    def convert(source: Path, target: Path) -> None:
        with Image.open(source) as image:
            if fmt == "JPEG":  # no alpha in JPEG: flatten on white rather than black
                flat = Image.new("RGB", image.size, "white")
                rgba = image.convert("RGBA")
                flat.paste(rgba, mask=rgba.getchannel("A"))
                flat.save(target, "JPEG", quality=90, optimize=True)
            else:
                image.save(target, fmt, **({"quality": 90} if fmt == "WEBP" else {"optimize": True}))

    return convert


def _transcode(codec: str, container_format: str, options: dict[str, str]) -> Callable[[Path, Path], None]:
    def convert(source: Path, target: Path) -> None:
        with av.open(str(source)) as src, av.open(str(target), "w", format=container_format, options=options) as out:
            video_in = src.streams.video[0]
            rate = video_in.average_rate or Fraction(24)
            stream = cast(VideoStream, out.add_stream(codec, rate=rate))
            stream.width, stream.height = video_in.codec_context.width, video_in.codec_context.height
            stream.pix_fmt = "yuv420p"
            if codec == "libvpx-vp9":
                stream.options = {"crf": "34", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
            else:
                stream.options = {"preset": "veryfast", "crf": "23"}
            for frame in src.decode(video_in):
                frame.pts = None  # let the encoder number frames at the output rate
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)

    return convert


def _preview(fmt: str) -> Callable[[Path, Path], None]:
    """A few seconds at a low frame rate and small size: for chat messages and tickets."""

    def convert(source: Path, target: Path) -> None:
        frames: list[Image.Image] = []
        with av.open(str(source)) as src:
            stream = src.streams.video[0]
            next_time = 0.0
            for frame in src.decode(stream):
                time_s = float(frame.time or 0.0)
                if time_s > PREVIEW_SECONDS:
                    break
                if time_s + 1e-6 < next_time:
                    continue
                next_time += 1 / PREVIEW_FPS
                image = frame.to_image()
                height = max(2, round(image.height * PREVIEW_WIDTH / image.width))
                frames.append(image.resize((PREVIEW_WIDTH, height), Image.Resampling.LANCZOS))
        if not frames:
            raise InvalidInput("format", "the video has no frames to preview")
        duration_ms = int(1000 / PREVIEW_FPS)
        extra = {"quality": 70} if fmt == "WEBP" else {"optimize": True}
        frames[0].save(target, fmt, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0, **extra)

    return convert


# Each format: its content type and how it is made from the original.
_CONVERSIONS: dict[JobKind, dict[str, tuple[str, Callable[[Path, Path], None]]]] = {
    JobKind.IMAGE: {
        "png": ("image/png", _image_to("PNG")),
        "jpeg": ("image/jpeg", _image_to("JPEG")),
        "webp": ("image/webp", _image_to("WEBP")),
    },
    JobKind.VIDEO: {
        "mp4": ("video/mp4", _transcode("libx264", "mp4", {"movflags": "+faststart"})),
        "webm": ("video/webm", _transcode("libvpx-vp9", "webm", {})),
        "gif": ("image/gif", _preview("GIF")),
        "webp": ("image/webp", _preview("WEBP")),
    },
}
VARIANTS: dict[JobKind, dict[str, Variant]] = {
    kind: {fmt: Variant(keys.DERIVED_SUFFIXES[kind][fmt], *made) for fmt, made in formats.items()}
    for kind, formats in _CONVERSIONS.items()
}


def variants_for(kind: JobKind | str) -> dict[str, Variant]:
    return VARIANTS[JobKind(kind)]


def derived_key(asset_key: str, variant: Variant) -> str:
    return keys.derived_key(asset_key, variant.suffix)


@dataclass(frozen=True)
class Derived:
    key: str
    content_type: str
    file_name: str


def derive(storage: Storage, asset: Asset, kind: JobKind | str, fmt: str) -> Derived:
    """The asset in ``fmt``: the original when it already is, a cached copy, or a new conversion."""
    variants = variants_for(kind)
    # Names as people type them: WEBP, Png, jpg.
    wanted = {"jpg": "jpeg"}.get(fmt.strip().lower(), fmt.strip().lower())
    if wanted not in variants:
        raise InvalidInput("format", f"{fmt!r} is not offered for {JobKind(kind).value}s", variants)
    variant = variants[wanted]
    if asset.content_type == variant.content_type and not variant.suffix.startswith("preview"):
        return Derived(asset.key, asset.content_type, asset.key.rsplit("/", 1)[-1])
    key = derived_key(asset.key, variant)
    if not storage.exists(key):
        with tempfile.TemporaryDirectory(prefix="mediagen-derive-") as tmp:
            source, target = Path(tmp) / f"source.{asset.key.rsplit('.', 1)[-1]}", Path(tmp) / f"out.{variant.suffix}"
            with storage.open(asset.key) as handle, source.open("wb") as out:
                shutil.copyfileobj(handle, out, length=1024 * 1024)
            variant.convert(source, target)
            storage.put_file(key, target, variant.content_type)
    return Derived(key, variant.content_type, key.rsplit("/", 1)[-1])


def read_all(storage: Storage, key: str) -> bytes:
    with storage.open(key) as handle:
        return handle.read()


def copy_to(storage: Storage, key: str, target: BinaryIO) -> int:
    with storage.open(key) as handle:
        before = target.tell() if target.seekable() else 0
        shutil.copyfileobj(handle, target, length=1024 * 1024)
        return (target.tell() if target.seekable() else 0) - before
