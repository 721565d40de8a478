"""Opening the studio (``Studio.open``): what the app server, the CLI and workers all start with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediagen.config import Settings
from mediagen.errors import DatabaseMissing
from mediagen.studio import Studio

from .support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def _with_earlier_media(data_dir: Path) -> Path:
    picture = data_dir / "media" / "image" / "2026" / "12" / "01" / "a1b2-0.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    return data_dir / "mediagen.db"


def test_a_fresh_data_dir_gets_its_database(tmp_path) -> None:
    studio = Studio.open(Settings(data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:9/cdn"))
    studio.close()
    assert (tmp_path / "data" / "mediagen.db").is_file()


@pytest.mark.parametrize("trace", ["media", "write-ahead log"])
def test_a_database_missing_beside_traces_of_earlier_use_is_refused(tmp_path, trace) -> None:
    database = tmp_path / "data" / "mediagen.db"
    if trace == "media":
        _with_earlier_media(tmp_path / "data")
    else:
        database.parent.mkdir(parents=True)
        database.with_name("mediagen.db-wal").write_bytes(b"")
    with pytest.raises(DatabaseMissing, match=f"^the database {database} is missing, but .*{trace}") as refused:
        Studio.open(Settings(data_dir=tmp_path / "data", public_base_url="http://127.0.0.1:9/cdn"))
    assert refused.value.exit_code == 2 and "python -m mediagen db create" in str(refused.value)
    assert not database.exists()


@pytest.mark.e2e
def test_the_app_refuses_to_start_on_a_missing_database_in_one_line(tmp_path) -> None:
    database = _with_earlier_media(tmp_path / "data")
    env = {**os.environ, "MEDIAGEN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(free_port())]
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 3 and f"mediagen: the database {database} is missing, but" in output
    assert "Traceback" not in output and not database.exists()
