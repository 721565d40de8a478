"""`--image REF` (and `--mask REF`) on the CLI's `image` and `video`: a real subprocess on the
local provider, as tests/test_cli.py runs it."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from .test_cli import _one_line_error, cli  # noqa: F401  # the fixture

pytestmark = pytest.mark.e2e


def _png(path, size=(96, 64), mode="RGB", color=(30, 120, 200)):
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


def test_image_and_video_start_from_a_job_or_a_file(cli, tmp_path) -> None:  # noqa: F811
    first = json.loads(cli("image", "a red kite", "--size", "256x256").stdout)
    done = cli("image", "the kite at night", "--size", "256x256", "--image", first["id"])
    assert done.returncode == 0, done.stderr
    edit = json.loads(done.stdout)
    assert (edit["status"], edit["derived_from"], edit["derivation"]) == ("succeeded", first["id"], "edit")
    (shown,) = edit["inputs"]
    assert (shown["role"], shown["origin"], shown["source_job_id"]) == ("image", f"job {first['id']}", first["id"])
    assert (shown["width"], shown["height"]) == (256, 256)
    stored = cli.media_dir / shown["url"].removeprefix("http://127.0.0.1:8501/cdn/")
    assert stored.read_bytes() == (cli.media_dir / first["assets"][0]["url"].split("/cdn/")[1]).read_bytes()

    photo = _png(tmp_path / "photo.png")
    done = cli("video", "the sea moves", "--image", str(photo), "--duration", "1", "--size", "128x128")
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert video["derived_from"] is None and video["inputs"][0]["origin"] == "file photo.png"
    assert (video["inputs"][0]["width"], video["inputs"][0]["height"]) == (96, 64)

    listed = {m["name"]: m["image_inputs"] for m in json.loads(cli("models").stdout)}
    assert set(listed["local-image"]) == {"image", "mask"} and "PNG" in listed["local-image"]["mask"]
    assert set(listed["local-video"]) == {"image"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("image", "x", "--image", "notes.png"), "error: image: is not a file type we recognise"),
        (("image", "x", "--image", "photo.png", "--mask", "photo.png"), "error: mask: has no transparency"),
        (("image", "x", "--mask", "photo.png"), "error: mask: needs an image"),
        (("video", "x", "--image", "tiny.png"), "error: image: is 8x8 px"),
        (("video", "x", "--image", "http://10.1.2.3/cat.png"), "error: image: http://10.1.2.3/cat.png is refused"),
        (("video", "x", "--image", "feedbeeffeedbeef"), "error: image: no job with id 'feedbeeffeedbeef'"),
    ],
)
def test_bad_refs_exit_2_in_one_line_naming_the_field_and_create_nothing(cli, tmp_path, args, words) -> None:  # noqa: F811
    (tmp_path / "notes.png").write_text("only words here\n" * 50)
    _png(tmp_path / "photo.png")
    _png(tmp_path / "tiny.png", size=(8, 8))
    done = cli(*args)
    assert done.returncode == 2
    assert _one_line_error(done).startswith(words), done.stderr
    assert json.loads(cli("jobs").stdout) == []
    assert not (cli.media_dir / "inputs").exists() or not any((cli.media_dir / "inputs").rglob("*.*"))
