"""A throwaway PostgreSQL cluster on loopback, for the tests and for trying the studio scaled out
(``python -m mediagen.scaled``): Debian's server binaries, a data folder in a temp dir, the socket
beside it, nothing kept afterwards.

The server refuses to run as root, so as root (CI) every server command runs as the ``postgres``
user (``runuser``); as anyone else it runs as that user. Durability is off (``fsync``,
``synchronous_commit``, ``full_page_writes``): a throwaway database never outlives a crash.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

SERVER_USER = "postgres"
# Enough for several workers' and apps' pools at once in the fault tests.
MAX_CONNECTIONS = 400


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_binaries() -> Path | None:
    """The newest installed server's bin folder (Debian's ``postgresql`` package), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


class Cluster:
    def __init__(self, root: Path) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL's server is not installed: apt-get install postgresql (make test does)")
        self.bin = binaries
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.port = free_port()
        self.log = root / "server.log"

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Cluster]:
        """A new cluster, started, and removed with its files afterwards. Its folder is made
        here, not in pytest's temp dirs: those are private to root, and the server runs as
        another user."""
        root = Path(tempfile.mkdtemp(prefix="mediagen-pg-"))
        cluster = cls(root)
        try:
            cluster.init()
            cluster.start()
            yield cluster
        finally:
            cluster.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        as_server_user = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*as_server_user, *command], capture_output=True, text=True, check=check, cwd=self.root, timeout=120
        )

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            SERVER_USER,
            "--no-sync",
            # UTF8 whatever the machine's LANG: prompt search folds case and accents beyond ASCII.
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                "-c listen_addresses=127.0.0.1",
                f"-c max_connections={MAX_CONNECTIONS}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop at once (connections are cut, as in a crash of the server) and start again."""
        self.stop("immediate")
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, statement: str) -> None:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SERVER_USER} dbname=postgres") as conn:
            conn.autocommit = True
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given); its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
