"""A studio on each storage backend (the local folder, and S3 in moto's server over real HTTP) and
each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mediagen.config import Settings
from mediagen.studio import Studio

from ..support.s3_server import AWS_ENV, moto_server, new_bucket


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def any_studio(request, tmp_path, monkeypatch, database_url) -> Iterator[Studio]:
    """On each database too (``database_url``): PostgreSQL with S3 is how a team scales out."""
    if request.param == "local":
        settings = Settings(
            data_dir=tmp_path / "data", database_url=database_url, public_base_url="http://127.0.0.1:9/cdn"
        )
    else:
        for name, value in AWS_ENV.items():
            monkeypatch.setenv(name, value)
        endpoint = request.getfixturevalue("s3_endpoint")
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            storage="s3",
            s3_bucket=new_bucket(endpoint),
            s3_endpoint_url=endpoint,
        )
    opened = Studio.open(settings)
    yield opened
    opened.close()
