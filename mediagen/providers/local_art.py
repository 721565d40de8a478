"""Procedural art for the offline ``local`` provider.

A picture is a handful of interfering waves coloured through a palette, with soft glowing orbs on
top. Everything is drawn from one number derived from (prompt, seed), so the same inputs give the
same pixels and different prompts give visibly different pictures. Video frames are the same
scene with the waves' phases and the orbs moving over time.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Scene:
    palette: np.ndarray  # (256, 3) float32 lookup table, 0..255
    waves: np.ndarray  # (W, 4): direction x, direction y, frequency, phase
    wave_speeds: np.ndarray  # (W,) radians per second
    centers: np.ndarray  # (R, 2) centres of radial ripples, in unit coordinates
    ripple_freqs: np.ndarray  # (R,)
    orbs: np.ndarray  # (O, 7): x, y, radius, r, g, b, orbit speed
    contrast: float


def scene_for(prompt: str, seed: int) -> Scene:
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))

    base_hue = rng.random()
    stops = []
    for i in range(5):
        hue = (base_hue + rng.uniform(-0.18, 0.18) + (0.5 if i == 2 else 0.0)) % 1.0
        sat = rng.uniform(0.45, 0.95)
        val = rng.uniform(0.15, 0.35) if i == 0 else rng.uniform(0.55, 1.0)
        stops.append(colorsys.hsv_to_rgb(hue, sat, val))
    stop_colors = np.array(stops, dtype=np.float32) * 255
    positions = np.linspace(0, 255, len(stops))
    lut = np.stack([np.interp(np.arange(256), positions, stop_colors[:, c]) for c in range(3)], axis=1).astype(
        np.float32
    )

    n_waves = int(rng.integers(3, 6))
    angles = rng.uniform(0, 2 * np.pi, n_waves)
    waves = np.stack(
        [np.cos(angles), np.sin(angles), rng.uniform(3, 14, n_waves), rng.uniform(0, 2 * np.pi, n_waves)],
        axis=1,
    ).astype(np.float32)
    n_ripples = int(rng.integers(1, 3))
    n_orbs = int(rng.integers(3, 8))
    orb_colors = [colorsys.hsv_to_rgb((base_hue + rng.uniform(0.3, 0.7)) % 1.0, 0.6, 1.0) for _ in range(n_orbs)]
    orbs = np.column_stack(
        [
            rng.uniform(0.1, 0.9, n_orbs),
            rng.uniform(0.1, 0.9, n_orbs),
            rng.uniform(0.04, 0.16, n_orbs),
            np.array(orb_colors, dtype=np.float32) * 255,
            rng.uniform(-1.2, 1.2, n_orbs),
        ]
    ).astype(np.float32)
    return Scene(
        palette=lut,
        waves=waves,
        wave_speeds=rng.uniform(-2.5, 2.5, n_waves).astype(np.float32),
        centers=rng.uniform(0, 1, (n_ripples, 2)).astype(np.float32),
        ripple_freqs=rng.uniform(10, 30, n_ripples).astype(np.float32),
        orbs=orbs,
        contrast=float(rng.uniform(0.8, 1.4)),
    )


def render(scene: Scene, width: int, height: int, t: float = 0.0) -> np.ndarray:
    """One RGB frame (height, width, 3) uint8 at time ``t`` seconds."""
    aspect = height / width
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, aspect, height, dtype=np.float32)[:, None]

    field = np.zeros((height, width), dtype=np.float32)
    for (dx, dy, freq, phase), speed in zip(scene.waves, scene.wave_speeds, strict=True):
        field += np.sin((x * dx + y * dy) * freq * 2 * np.pi + phase + speed * t)
    for (cx, cy), freq in zip(scene.centers, scene.ripple_freqs, strict=True):
        dist = np.sqrt((x - cx) ** 2 + (y - cy * aspect) ** 2)
        field += 0.8 * np.sin(dist * freq * 2 * np.pi - 3.0 * t)

    span = len(scene.waves) + 0.8 * len(scene.centers)
    level = np.tanh(field / span * 2.2 * scene.contrast) * 0.5 + 0.5
    rgb = scene.palette[(level * 255).astype(np.uint8)]

    for ox, oy, radius, r, g, b, orbit in scene.orbs:
        angle = orbit * t
        cx = ox + 0.08 * np.sin(angle)
        cy = (oy + 0.08 * np.cos(angle)) * aspect
        glow = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))[..., None]
        rgb = rgb * (1 - 0.55 * glow) + np.array([r, g, b], dtype=np.float32) * 0.55 * glow
    return np.clip(rgb, 0, 255).astype(np.uint8)


def scene_frame(scene: Scene, width: int, height: int, t: float) -> np.ndarray:
    """A video frame at ``t`` seconds, drawn at half size and scaled up: the art is smooth, so this
    costs nothing visible and makes rendering about four times faster."""
    small = render(scene, max(2, width // 2), max(2, height // 2), t)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))


def render_png(prompt: str, seed: int, width: int, height: int) -> bytes:
    pixels = render(scene_for(prompt, seed), width, height)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
