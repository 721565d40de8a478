"""What the offline ``local`` provider does with a reference image: edits, variations and videos
that start on it.

An edit is the given picture, colour-graded as the prompt and seed say, with the procedural scene
of ``local_art`` blended over it at a moderate strength: recognisably the same picture, visibly
changed, and another seed gives another variation. A mask (transparent where the edit may paint,
as OpenAI's edits take it) keeps its opaque part untouched.

A video made from an image starts on that image exactly (its first frame) and moves from there:
a slow zoom and pan into it while the scene's overlay fades in, so early frames look like the
input and later ones drift away from it.

Inputs are fitted to the output size by cover-cropping (scaled to fill, the overflow cut evenly
from both sides), never stretched.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from .local_art import Scene, render, scene_for, scene_frame

# How far an edit moves towards the procedural scene, and how far a video's overlay gets by its
# end: enough to be seen at a glance, little enough that the input stays recognisable.
EDIT_OVERLAY = (0.2, 0.33)
VIDEO_OVERLAY_END = 0.45
# How much a video has zoomed into its first frame by its last one (1.15 = 15 % closer).
VIDEO_ZOOM_END = 1.15
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode(data: bytes) -> Image.Image:
    """An input as people see it: EXIF rotation applied (phone photos), as RGB."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return ImageOps.exif_transpose(image).convert("RGB")


def fit_cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scaled to fill ``width``×``height``, the overflow cropped evenly: no stretching, no bars."""
    if image.size == (width, height):
        return image
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def edit_weights(mask_data: bytes | None, image_size: tuple[int, int], width: int, height: int) -> np.ndarray:
    """Per pixel, how much the edit may change (0 keeps the input): 1 everywhere without a mask,
    else the mask's transparency, cropped like the image so it still lines up with it."""
    if mask_data is None:
        return np.ones((height, width, 1), dtype=np.float32)
    mask = Image.open(io.BytesIO(mask_data))
    mask.load()
    alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != image_size:  # the checks ask for the image's size; never misalign if not
        alpha = alpha.resize(image_size, Image.Resampling.BILINEAR)
    alpha = fit_cover(alpha, width, height)
    return (1.0 - np.asarray(alpha, dtype=np.float32) / 255.0)[..., None]


@dataclass(frozen=True)
class Grade:
    """A prompt- and seed-chosen colour grade: saturation, then a gain per channel."""

    saturation: float
    gains: np.ndarray  # (3,) float32
    overlay: float  # share of the procedural scene in the result

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        luma = (pixels @ _LUMA)[..., None]
        return (luma + (pixels - luma) * self.saturation) * self.gains


def grade_for(prompt: str, seed: int) -> Grade:
    digest = hashlib.sha256(f"edit\x00{prompt}\x00{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return Grade(
        saturation=float(rng.uniform(0.7, 1.3)),
        gains=rng.uniform(0.85, 1.15, 3).astype(np.float32),
        overlay=float(rng.uniform(*EDIT_OVERLAY)),
    )


def edit_png(image_data: bytes, mask_data: bytes | None, prompt: str, seed: int, width: int, height: int) -> bytes:
    """The input transformed as ``prompt`` and ``seed`` say, at ``width``×``height``, as a PNG.
    The same inputs give the same bytes."""
    image = decode(image_data)
    weights = edit_weights(mask_data, image.size, width, height)
    base = np.asarray(fit_cover(image, width, height), dtype=np.float32)
    grade = grade_for(prompt, seed)
    scene = render(scene_for(prompt, seed), width, height).astype(np.float32)
    edited = grade.apply(base) * (1 - grade.overlay) + scene * grade.overlay
    pixels = base * (1 - weights) + edited * weights
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB").save(
        buffer, format="PNG", compress_level=6
    )
    return buffer.getvalue()


class MovingStill:
    """The frames of a video that starts on an image: frame 0 is the image fitted to the video's
    size; then the view zooms and pans into it while the procedural scene fades in over it."""

    def __init__(
        self, image_data: bytes, scene: Scene, pan_seed: str, width: int, height: int, frames: int, fps: int
    ) -> None:
        self.base = fit_cover(decode(image_data), width, height)
        self.scene = scene
        self.width, self.height, self.frames, self.fps = width, height, frames, fps
        digest = hashlib.sha256(pan_seed.encode()).digest()
        angle = int.from_bytes(digest[:4], "big") / 2**32 * 2 * np.pi
        self.pan = (float(np.cos(angle)), float(np.sin(angle)))  # which way the view drifts

    def frame(self, index: int) -> np.ndarray:
        progress = index / max(1, self.frames - 1)
        eased = progress * progress * (3 - 2 * progress)  # starts and ends gently
        zoom = 1 + (VIDEO_ZOOM_END - 1) * eased
        view_w, view_h = self.width / zoom, self.height / zoom
        # The view's centre moves towards one edge but never past it.
        centre_x = self.width / 2 + self.pan[0] * (self.width - view_w) / 2
        centre_y = self.height / 2 + self.pan[1] * (self.height - view_h) / 2
        box = (centre_x - view_w / 2, centre_y - view_h / 2, centre_x + view_w / 2, centre_y + view_h / 2)
        view = (
            self.base if index == 0 else self.base.resize((self.width, self.height), Image.Resampling.BILINEAR, box=box)
        )
        pixels = np.asarray(view)
        overlay = VIDEO_OVERLAY_END * eased
        if overlay <= 0:
            return pixels
        art = scene_frame(self.scene, self.width, self.height, index / self.fps)
        blended = pixels.astype(np.float32) * (1 - overlay) + art.astype(np.float32) * overlay
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
