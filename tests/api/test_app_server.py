"""`streamlit run app.py` for real: the /cdn mount and the lifespan's poller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..support.servers import AppServer, app_server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("server")) as running:
        yield running


def _run_cli(server: AppServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediagen", *args],
        capture_output=True,
        text=True,
        env=server.env,
        cwd=ROOT,
        timeout=120,
    )


def _cli(server: AppServer, *args: str) -> dict:
    done = _run_cli(server, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_media_urls_follow_the_port_the_app_serves(server) -> None:
    """As after `make run PORT=…`: no MEDIAGEN_PUBLIC_BASE_URL and a port other than 8501. The app's
    own URLs (API answers; the pages make theirs the same way) and the CLI's, which finds the running
    app in the data dir, point at that port and load; in local mode they are plain."""
    assert not server.base.endswith(":8501") and not server.env["MEDIAGEN_PUBLIC_BASE_URL"]
    made = _run_cli(server, "image", "a harbour", "--size", "256x256")
    assert made.returncode == 0 and made.stderr == "", made.stderr  # nothing to warn about
    [from_cli] = json.loads(made.stdout)["assets"]
    answer = httpx.post(f"{server.base}/api/images/generate", json={"prompt": "a quay", "size": "256x256"}, timeout=60)
    from_app = answer.json()["data"][0]["url"]
    for url in (from_cli["url"], from_cli["thumbnail_url"], from_app):
        assert url.startswith(f"{server.base}/cdn/image/") and "?" not in url
        assert httpx.get(url, timeout=10).status_code == 200
    assert f"is served at {server.base}/cdn" in server.log_path.read_text()


def test_asset_urls_are_served_with_range_support(server) -> None:
    job = _cli(server, "image", "a lighthouse", "--size", "256x256")
    [asset] = job["assets"]
    assert asset["url"].startswith(server.base + "/cdn/")
    whole = httpx.get(asset["url"], timeout=10)
    assert whole.status_code == 200 and whole.headers["content-type"] == "image/png"
    assert len(whole.content) == asset["bytes"] and whole.content[:8] == b"\x89PNG\r\n\x1a\n"
    part = httpx.get(asset["url"], headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{asset['bytes']}"
    thumb = httpx.get(asset["thumbnail_url"], timeout=10)
    assert thumb.status_code == 200 and thumb.content[8:12] == b"WEBP"
    assert httpx.get(f"{server.base}/cdn/image/nope.png", timeout=10).status_code == 404


def test_the_server_poller_finishes_queued_videos(server) -> None:
    queued = _cli(server, "video", "slow waves", "--duration", "1", "--size", "160x90")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = _cli(server, "job", queued["id"])
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    video = httpx.get(job["assets"][0]["url"], headers={"Range": "bytes=0-1023"}, timeout=10)
    assert video.status_code == 206 and b"ftyp" in video.content[:16]


def test_the_dashboard_answers(server) -> None:
    page = httpx.get(server.base + "/", timeout=10)
    assert page.status_code == 200 and '<div id="root">' in page.text.replace("'", '"')


def test_serving_on_all_interfaces_without_sign_in_is_refused(tmp_path) -> None:
    from ..support.servers import free_port

    env = {**os.environ, "MEDIAGEN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("MEDIAGEN_ALLOW_UNAUTHENTICATED", None)
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0"]
    refused = subprocess.run(
        [*command, "--server.port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0
    assert "mediagen: refusing to serve on 0.0.0.0 without sign-in" in refused.stdout + refused.stderr
    assert "MEDIAGEN_ALLOW_UNAUTHENTICATED=1" in refused.stdout + refused.stderr


def test_serving_on_all_interfaces_can_be_allowed_explicitly(tmp_path) -> None:
    with app_server(tmp_path, allow_unauthenticated="1", streamlit_args=("--server.address", "0.0.0.0")) as running:
        assert httpx.get(f"{running.base}/_stcore/health", timeout=10).status_code == 200


def test_a_half_written_sign_in_is_refused_at_start_up(tmp_path) -> None:
    from ..support.servers import free_port

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://127.0.0.1:1/oauth2callback"\nclient_id = "c"\n')
    env = {**os.environ, "MEDIAGEN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(free_port())]
    refused = subprocess.run(
        [*command, "--secrets.files", str(secrets)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode == 3 and "mediagen: sign-in is half configured: [auth] needs cookie_secret" in output
    assert "Traceback" not in output


def test_an_app_without_its_own_worker_leaves_the_work_to_separate_workers(tmp_path) -> None:
    """MEDIAGEN_WORKER_IN_APP=false: the app serves pages and routes but polls nothing; a queued
    video waits for a separate worker, which finishes it."""
    with app_server(tmp_path, worker_in_app="false") as app:
        queued = _cli(app, "video", "left to a worker", "--duration", "1", "--size", "160x90")
        time.sleep(1.5)  # five poll intervals of the test server: an in-app worker would have submitted it
        job = _cli(app, "job", queued["id"])
        assert (job["status"], job["provider_job_id"]) == ("queued", None)
        assert "no worker in the app process" in (tmp_path / "streamlit.log").read_text()
        for _ in range(60):
            _cli(app, "worker", "--once")
            job = _cli(app, "job", queued["id"])
            if job["status"] != "queued" and job["status"] != "running":
                break
        assert job["status"] == "succeeded", job


def test_an_alias_to_nowhere_is_refused_at_start_up_naming_it(tmp_path) -> None:
    from ..support.servers import free_port

    env = {
        **os.environ,
        "MEDIAGEN_DATA_DIR": str(tmp_path / "data"),
        "MEDIAGEN_MODEL_ALIASES": '{"dall-e-3": "no-such-model"}',
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(free_port())]
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "alias 'dall-e-3' → 'no-such-model': 'no-such-model' is not a model of any provider" in output
    assert "Traceback" not in output
