"""The System page under AppTest: providers as a read-only status, and only the storage actions
the configured backend has (local folder, or S3 in moto's server over real HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from mediagen import server
from mediagen.config import Settings
from mediagen.studio import Studio

from ..conftest import ROOT
from ..support.s3_server import AWS_ENV, client, moto_server, new_bucket

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database


def _system_page(studio: Studio) -> Any:
    from streamlit.testing.v1 import AppTest

    server.use(studio)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/system.py").run()
    assert not app.exception, app.exception
    return app


@pytest.fixture
def opened_page(studio):
    yield _system_page(studio)
    server.use(None)


def test_providers_are_a_status_not_disabled_checkboxes(opened_page) -> None:
    app = opened_page
    assert not [d for d in app.dataframe if "configured" in d.value.columns]  # no greyed checkbox column
    [local] = [c for c in app.get("flex_container") if any("Local" in m.value for m in c.get("markdown"))]
    assert any("configured" in m.value and "green" in m.value for m in local.get("markdown"))
    [openai] = [c for c in app.get("flex_container") if any("OpenAI" in m.value for m in c.get("markdown"))]
    said = " ".join(m.value for m in openai.get("markdown") + openai.get("caption"))
    assert "not configured" in said and "OPENAI_API_KEY" in said


def test_local_storage_offers_no_bucket_rules(opened_page) -> None:
    labels = [b.label for b in opened_page.button]
    assert "Run storage self-check" in labels
    assert not [label for label in labels if "CORS" in label or "lifecycle" in label]


def test_s3_storage_offers_to_ensure_its_bucket_rules(tmp_path, monkeypatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with moto_server() as endpoint:
        bucket = new_bucket(endpoint)
        studio = Studio.open(
            Settings(data_dir=tmp_path / "data", storage="s3", s3_bucket=bucket, s3_endpoint_url=endpoint)
        )
        try:
            app = _system_page(studio)
            app.button(key="sys-prepare").click().run()
            assert [b.label for b in app.button if b.key == "sys-prepare"] == ["Ensure CORS and lifecycle rules"]
            assert any("CORS" in s.value for s in app.success)
            rules = client(endpoint).get_bucket_cors(Bucket=bucket)["CORSRules"]
            assert any(rule.get("ID") == "mediagen-media-get" for rule in rules)
        finally:
            server.use(None)
            studio.close()


def test_a_key_never_used_reads_a_dash_not_none(studio) -> None:
    from mediagen.auth import keys

    keys.create_key(studio, "ana@example.com", "nightly renders")
    app = _system_page(studio)
    try:
        [table] = [d.value for d in app.dataframe if "last used" in d.value.columns]
        assert not table.isna().any().any()
        assert table.iloc[0][["last used", "revoked"]].tolist() == ["—", "—"]
    finally:
        server.use(None)
