"""PgBouncer in transaction mode on loopback, in front of a test cluster: Debian's ``pgbouncer``,
its config and log in a temp dir, run as the cluster's server user (it refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mediagen.db.local_cluster import SERVER_USER, Cluster, free_port

BINARY = Path("/usr/sbin/pgbouncer")


@contextlib.contextmanager
def pgbouncer(cluster: Cluster, *, server_connections: int = 4) -> Iterator[int]:
    """A running PgBouncer that hands each transaction one of at most ``server_connections``
    connections to ``cluster``; its port."""
    if not BINARY.exists():
        raise RuntimeError("PgBouncer is not installed: apt-get install pgbouncer (make test does)")
    root = Path(tempfile.mkdtemp(prefix="mediagen-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text(f'"{SERVER_USER}" ""\n')
    (root / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host=127.0.0.1 port={cluster.port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {root / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {server_connections}",
                "max_client_conn = 500",
                f"logfile = {root / 'pgbouncer.log'}",
            ]
        )
        + "\n"
    )
    as_server_user = {"user": SERVER_USER, "group": SERVER_USER} if os.geteuid() == 0 else {}
    if as_server_user:
        shutil.chown(root, SERVER_USER)
    proc = subprocess.Popen([str(BINARY), str(root / "pgbouncer.ini")], **as_server_user)  # type: ignore[call-overload]
    try:
        _wait_listening(port, proc, root)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    log = root / "pgbouncer.log"
    raise RuntimeError("PgBouncer did not start:\n" + (log.read_text() if log.exists() else "(no log)"))
