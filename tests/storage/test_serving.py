"""Where local media is served (``storage/serving.py``): the app records its address in the data
dir, other processes find the running app from it, what cannot work is said once; and with
sign-in on, media URLs are signed and expire."""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from mediagen.config import Settings
from mediagen.errors import Forbidden
from mediagen.signing import KEY_FILE
from mediagen.storage import make_storage
from mediagen.storage.serving import Announcement, Serving, check_media_link, origin_of

KEY = "image/2026/12/03/job-0.png"


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def running_port() -> Iterator[int]:
    """A port where something answers Streamlit's health check over real HTTP, as a running app."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def data_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")  # no MEDIAGEN_PUBLIC_BASE_URL, as after `make run`


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_app_records_where_it_serves_and_other_processes_follow(data_settings, running_port, caplog) -> None:
    app = Serving(data_settings)
    app.here("127.0.0.1", running_port, lambda: False)
    assert app.url(KEY) == f"http://127.0.0.1:{running_port}/cdn/{KEY}"
    # The CLI (another Serving on the same data dir) finds the running app.
    cli = make_storage(data_settings)
    assert cli.url(KEY) == f"http://127.0.0.1:{running_port}/cdn/{KEY}"
    assert _warnings(caplog) == []

    app.leave()  # the app stopped: its record is gone, and nothing else serves this data dir
    assert list(app.records.glob("*.json")) == []
    later = make_storage(data_settings)
    assert [later.url(KEY), later.url(KEY)] == [f"http://127.0.0.1:8501/cdn/{KEY}"] * 2
    [warning] = _warnings(caplog)  # said once, however many URLs are made
    assert "no running studio serves the media of" in warning and "MEDIAGEN_PUBLIC_BASE_URL" in warning


def test_records_of_killed_or_silent_apps_are_skipped(data_settings, running_port) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    app = Serving(data_settings)
    app.here("127.0.0.1", running_port, lambda: False)
    host = socket.gethostname()
    # Newer than the live record, but killed (its process is gone) or silent (nothing answers).
    later = time.time() + 60
    records = {
        "killed": Announcement(f"http://127.0.0.1:{running_port + 1}", True, host, int(dead.stdout), later),
        "silent": Announcement("http://127.0.0.1:9", True, host, 1, later + 1),  # pid 1 lives; port 9 is closed
    }
    for name, announcement in records.items():
        (app.records / f"{name}.json").write_text(json.dumps(dataclasses.asdict(announcement)))
    other = Serving(data_settings, probe_timeout_s=0.5)
    assert other.media_base() == f"http://127.0.0.1:{running_port}/cdn" and not other.signs()
    # An app starting on the data dir clears the records of this host's dead processes.
    Serving(data_settings).here("127.0.0.1", running_port, lambda: False)
    assert not (app.records / "killed.json").exists() and (app.records / "silent.json").exists()


@pytest.mark.parametrize(
    ("address", "origin"),
    [
        ("127.0.0.1", "http://127.0.0.1:8611"),
        ("studio.lan", "http://studio.lan:8611"),
        ("0.0.0.0", "http://localhost:8611"),
        ("", "http://localhost:8611"),
        ("::1", "http://[::1]:8611"),
    ],
)
def test_the_origin_follows_the_address_and_port_served(address, origin) -> None:
    assert origin_of(address, 8611) == origin


def test_what_cannot_work_is_warned_once_at_start(tmp_path, caplog) -> None:
    stale = Settings(data_dir=tmp_path / "a", public_base_url="http://127.0.0.1:8501/cdn")
    Serving(stale).here("127.0.0.1", 8611, lambda: False)
    [warning] = _warnings(caplog)
    assert "MEDIAGEN_PUBLIC_BASE_URL is http://127.0.0.1:8501/cdn, but this app serves http://127.0.0.1:8611" in warning
    assert make_storage(stale).url(KEY) == f"http://127.0.0.1:8501/cdn/{KEY}"  # the setting still wins

    caplog.clear()
    proxied = Settings(data_dir=tmp_path / "b", public_base_url="https://studio.example.com/cdn")
    Serving(proxied).here("127.0.0.1", 8611, lambda: False)  # a proxy in front: nothing to say
    assert _warnings(caplog) == []

    everywhere = Settings(data_dir=tmp_path / "c")
    Serving(everywhere).here("0.0.0.0", 8611, lambda: False)
    [warning] = _warnings(caplog)
    assert "every interface" in warning and "http://localhost:8611/cdn" in warning


def test_media_urls_are_signed_while_sign_in_is_on(data_settings, running_port) -> None:
    sign_in = [False]
    app = Serving(data_settings)
    app.here("127.0.0.1", running_port, lambda: sign_in[0])
    assert "?" not in app.url(KEY)  # local mode: plain URLs
    sign_in[0] = True
    url = urlsplit(app.url(KEY))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"http://127.0.0.1:{running_port}/cdn/{KEY}"
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert set(query) == {"expires", "signature"}
    assert time.time() + 0.8 * 3600 < int(query["expires"]) <= time.time() + 3600
    check_media_link(data_settings, KEY, query["expires"], query["signature"])
    # The CLI finds the app's sign-in in its record and signs with the same key (kept in the data dir).
    cli_url = make_storage(data_settings).url(KEY)
    assert "signature=" in cli_url
    cli_query = {n: v[0] for n, v in parse_qs(urlsplit(cli_url).query).items()}
    check_media_link(data_settings, KEY, cli_query["expires"], cli_query["signature"])
    assert (data_settings.data_dir / KEY_FILE).stat().st_mode & 0o077 == 0  # the owner's only


def test_a_wrong_missing_or_expired_signature_is_refused(data_settings, running_port) -> None:
    short = data_settings.model_copy(update={"presign_ttl_s": 1})
    app = Serving(short)
    app.here("127.0.0.1", running_port, lambda: True)
    query = {n: v[0] for n, v in parse_qs(urlsplit(app.url(KEY)).query).items()}
    expires, proof = query["expires"], query["signature"]
    check_media_link(short, KEY, expires, proof)

    def refusal(*args: object, settings: Settings = short) -> str:
        with pytest.raises(Forbidden) as refused:
            check_media_link(settings, *args)  # type: ignore[arg-type]
        return str(refused.value)

    assert "not signed" in refusal(KEY, None, None)
    assert "not signed" in refusal(KEY, expires, None)
    assert "not valid" in refusal(KEY, expires, proof[:-2] + "xx")
    assert "not valid" in refusal("image/2026/12/03/other-0.png", expires, proof)  # another file
    assert "not valid" in refusal(KEY, str(int(expires) + 3600), proof)  # a later expiry
    assert "not valid" in refusal(KEY, "soon", proof)
    other_key = short.model_copy(update={"link_secret": SecretStr("x" * 40)})
    assert "not valid" in refusal(KEY, expires, proof, settings=other_key)
    time.sleep(2.1)  # past its one-second lifetime
    assert "expired" in refusal(KEY, expires, proof)
