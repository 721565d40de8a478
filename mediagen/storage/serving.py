"""Where the app that serves this data dir's local media answers, and whether media URLs are signed.

Asset URLs are absolute (browsers fetch them, and ``st.image`` takes a relative URL for a file
path), so whoever makes one must know the address of the app serving ``/cdn``:

- ``MEDIAGEN_PUBLIC_BASE_URL``, when set, always wins.
- The app server is told its own address and port as it starts (Streamlit's ``server.address``
  and ``server.port``), and records them in ``{data_dir}/serving/``: one small file per running
  app server, removed when it stops.
- Any other process on the data dir (the CLI, a separate worker) uses the newest record whose app
  still answers. A record left by a killed app is skipped (its process is gone, or nothing
  answers at its address); with no live record, URLs use the default address, said once.

With sign-in on, media URLs carry an expiry and a signature (``signing``), like presigned S3 URLs:
made when shown, never stored; ``/cdn`` then serves only those (``check_media_link``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import httpx

from ..config import Settings
from ..errors import Forbidden
from ..signing import signature, signed_by_us

log = logging.getLogger(__name__)

DEFAULT_ORIGIN = "http://127.0.0.1:8501"
MEDIA_PATH = "/cdn"
RECORDS_FOLDER = "serving"
HEALTH_PATH = "/_stcore/health"
# A long-running worker looks again this often, so it follows an app restarted on another port.
LOOKUP_EVERY_S = 10.0
WILDCARD_ADDRESSES = {"", "0.0.0.0", "::"}
MEDIA_SALT = "media"


@dataclasses.dataclass(frozen=True)
class Announcement:
    """One running app server, as it recorded itself in the data dir."""

    origin: str
    sign_in: bool
    host: str
    pid: int
    started_at: float


def origin_of(address: str | None, port: int) -> str:
    """The origin browsers reach an app at that listens on ``address``:``port``; an app on every
    interface is reached here as localhost (the address people use elsewhere cannot be known)."""
    host = (address or "").strip()
    if host in WILDCARD_ADDRESSES:
        host = "localhost"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Serving:
    """Media URLs of local storage for one process: at the running app's address, signed while
    its sign-in is on. The app server says where it listens (``here``); other processes look."""

    def __init__(self, settings: Settings, *, probe_timeout_s: float = 1.0) -> None:
        self.settings = settings
        self.probe_timeout_s = probe_timeout_s
        # In the app server: where it serves (as recorded), and whether sign-in is on, asked live.
        self._own: Announcement | None = None
        self._sign_in: Callable[[], bool] = lambda: False
        self._found: tuple[float, Announcement | None] | None = None
        self._warned = False
        self._lock = threading.Lock()

    @property
    def records(self) -> Path:
        return self.settings.data_dir / RECORDS_FOLDER

    # The app server.

    def here(self, address: str | None, port: int, sign_in: Callable[[], bool]) -> None:
        """This process is the app server, listening on ``address``:``port``; ``sign_in`` says
        (live) whether sign-in is on. Say once what cannot work, and record where we serve."""
        origin = origin_of(address, port)
        explicit = self.settings.public_base_url
        if self.settings.storage == "local":
            if explicit and _elsewhere(explicit, address, port):
                log.warning(
                    "MEDIAGEN_PUBLIC_BASE_URL is %s, but this app serves %s: media URLs follow the setting "
                    "and will not load from this app; unset it to follow the app, or correct it",
                    explicit,
                    origin,
                )
            elif not explicit and (address or "").strip() in WILDCARD_ADDRESSES:
                log.warning(
                    "the app serves every interface (%s): media URLs use %s, which only this machine reaches; "
                    "set MEDIAGEN_PUBLIC_BASE_URL to the address people use, e.g. https://studio.example.com/cdn",
                    address or "all addresses",
                    origin + MEDIA_PATH,
                )
        self._sign_in = sign_in
        self._own = self._announce(Announcement(origin, sign_in(), socket.gethostname(), os.getpid(), time.time()))

    def leave(self) -> None:
        """The app server stops: take its record away."""
        if self._own is not None:
            self._record_path(self._own).unlink(missing_ok=True)
        self._own = None

    # Every process.

    def media_base(self) -> str:
        """The absolute base of media URLs, ``{origin}/cdn`` or the configured one."""
        if self.settings.public_base_url:
            return self.settings.public_base_url
        if self._own is not None:
            return self._own.origin + MEDIA_PATH
        found = self._running()
        if found is not None:
            return found.origin + MEDIA_PATH
        if not self._warned:
            self._warned = True
            log.warning(
                "no running studio serves the media of %s (start it with make run): media URLs use %s, "
                "which works once the app serves there; set MEDIAGEN_PUBLIC_BASE_URL to say where it does",
                self.settings.data_dir,
                DEFAULT_ORIGIN + MEDIA_PATH,
            )
        return DEFAULT_ORIGIN + MEDIA_PATH

    def signs(self) -> bool:
        """Whether media URLs must be signed: sign-in is on in the app that serves them."""
        if self._own is not None:
            signing = self._sign_in()
            if signing != self._own.sign_in:  # switched without a restart: tell the other processes too
                self._own = self._announce(dataclasses.replace(self._own, sign_in=signing))
            return signing
        found = self._running()
        return found is not None and found.sign_in

    def url(self, key: str) -> str:
        url = f"{self.media_base()}/{quote(key)}"
        if self.signs():
            expires = _expiry(self.settings.presign_ttl)
            proof = signature(self.settings, MEDIA_SALT, f"{expires}:{key}")
            url += "?" + urlencode({"expires": expires, "signature": proof})
        return url

    # The records.

    def _record_path(self, announcement: Announcement) -> Path:
        return self.records / f"{announcement.host}-{announcement.pid}.json"

    def _announce(self, announcement: Announcement) -> Announcement:
        self.records.mkdir(parents=True, exist_ok=True)
        for path, stale in self._read():
            if stale.host == announcement.host and not _alive(stale.pid):
                path.unlink(missing_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.records, prefix=".record-")
        with os.fdopen(fd, "w") as out:
            json.dump(dataclasses.asdict(announcement), out)
        os.replace(temp, self._record_path(announcement))  # whole or not at all, for readers
        return announcement

    def _read(self) -> list[tuple[Path, Announcement]]:
        found = []
        for path in self.records.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append((path, Announcement(**json.loads(path.read_text()))))
        return found

    def _running(self) -> Announcement | None:
        with self._lock:
            now = time.monotonic()
            if self._found is None or now - self._found[0] >= LOOKUP_EVERY_S:
                self._found = (now, self._look_up())
            return self._found[1]

    def _look_up(self) -> Announcement | None:
        here = socket.gethostname()
        for _path, announced in sorted(self._read(), key=lambda found: found[1].started_at, reverse=True):
            if announced.host == here and not _alive(announced.pid):
                continue  # killed without stopping: its port may be someone else's now
            if _answers(announced.origin, self.probe_timeout_s):
                return announced
        return None


def check_media_link(settings: Settings, key: str, expires: str | None, presented: str | None) -> None:
    """Let a media URL through only with our signature for this key and an expiry still ahead;
    ``Forbidden`` says which is wrong."""
    if not expires or not presented:
        raise Forbidden("this media link is not signed (sign-in is on); open it from the studio")
    if not expires.isdigit() or not signed_by_us(settings, MEDIA_SALT, f"{expires}:{key}", presented):
        raise Forbidden("this media link is not valid; open it again from the studio")
    if int(expires) < int(time.time()):  # valid to the end of its last second
        raise Forbidden("this media link has expired; reload the page or ask the API again for a fresh one")


def _expiry(ttl_s: int) -> int:
    """Now plus ``ttl_s``, rounded down to a tenth of it: a page rerun within that tenth makes the
    same URL, so browsers keep the image they have instead of fetching it again."""
    step = max(1, ttl_s // 10)
    return (int(time.time()) + ttl_s) // step * step


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _answers(origin: str, timeout_s: float) -> bool:
    try:
        return httpx.get(origin + HEALTH_PATH, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def _elsewhere(url: str, address: str | None, port: int) -> bool:
    """Whether ``url`` names this machine (loopback or our own address) on another port than ours:
    a mistake we can see. A different host may be a proxy in front of us, which we cannot judge."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ours = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ours = False
    ours = ours or host == (address or "").strip()
    named_port = parts.port or (443 if parts.scheme == "https" else 80)
    return ours and named_port != port
