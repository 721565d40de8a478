"""The offline ``local`` provider's models: what they accept, the images they start from included."""

from __future__ import annotations

from ..catalog import ImageInput, IntRange, ModelSpec, Size
from ..jobs.status import JobKind

SEED = IntRange("seed", "Same prompt and seed give the same result", 0, 2**31 - 1, None)
MODELS = (
    ModelSpec(
        name="local-image",
        provider="local",
        kind=JobKind.IMAGE,
        label="Local procedural image (offline)",
        max_prompt_chars=4000,
        params=(
            Size(
                "size",
                "Width x height in pixels",
                presets=(
                    "1024x1024",
                    "512x512",
                    "768x512",
                    "512x768",
                    "1536x1024",
                    "1024x1536",
                    "2048x2048",
                    "256x256",
                ),
                min_side=256,
                max_width=2048,
                max_height=2048,
                default_value="1024x1024",
            ),
            IntRange("n", "How many images", 1, 4, 1),
            SEED,
        ),
        image_inputs=(
            ImageInput(
                "image",
                "image",
                min_side=16,
                max_side=4096,
                help="Edited as the prompt says (another seed gives another variation), "
                "fitted to the size by cropping to fill",
            ),
            ImageInput(
                "mask",
                "mask",
                formats=("png",),
                min_side=16,
                max_side=4096,
                same_size_as_image=True,
                help="Transparent where the edit may paint; opaque parts stay as they are",
            ),
        ),
    ),
    ModelSpec(
        name="local-video",
        provider="local",
        kind=JobKind.VIDEO,
        label="Local procedural video (offline)",
        max_prompt_chars=4000,
        params=(
            IntRange("duration", "Length in seconds", 1, 10, 4),
            Size(
                "size",
                "Width x height in pixels (H.264 needs even sides)",
                presets=("1280x720", "854x480", "640x360", "720x1280", "480x854", "512x512"),
                min_side=64,
                max_width=1280,
                max_height=1280,
                max_pixels=1280 * 720,
                multiple_of=2,
                default_value="854x480",
            ),
            SEED,
        ),
        image_inputs=(
            ImageInput(
                "image",
                "image",
                min_side=16,
                max_side=4096,
                help="The first frame: fitted to the video's size by cropping to fill (no stretching), "
                "then the video moves on from it",
            ),
        ),
    ),
)
