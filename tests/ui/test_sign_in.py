"""Sign-in for real: a loopback OIDC provider (oidc-provider-mock), `streamlit run app.py` with an
`[auth]` section pointing at it, and Chromium signing in as each role."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from mediagen.auth.keys import create_key
from mediagen.config import Settings
from mediagen.jobs import actions
from mediagen.studio import Studio

from ..support.servers import AppServer, app_server, free_port
from .test_browser import browser  # noqa: F401  (the module's Chromium, shared)

pytestmark = pytest.mark.e2e
PEOPLE = {
    "ana@example.com": "Ana Admin",
    "bo@example.com": "Bo Creator",
    "dee@example.com": "Dee Creator",
    "cy@review.example.org": "Cy Reviewer",
}
ROLES = {"ana@example.com": "admin", "example.com": "creator", "review.example.org": "reviewer"}


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[str]:
    users = [User(sub=email, claims={"email": email, "name": name}) for email, name in PEOPLE.items()]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory, identity_provider) -> Iterator[AppServer]:
    workdir = tmp_path_factory.mktemp("signed")
    port = free_port()
    secrets = workdir / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{"c" * 40}"\n'
        'client_id = "mediagen"\n'
        'client_secret = "mediagen-test-secret"\n'
        f'server_metadata_url = "{identity_provider}/.well-known/openid-configuration"\n'
    )
    with app_server(
        workdir,
        port=port,
        streamlit_args=("--secrets.files", str(secrets)),
        roles=json.dumps(ROLES),
        admin_contact="ana@example.com",
    ) as running:
        yield running


@pytest.fixture
def visitor(browser) -> Iterator:  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _sign_in(page, server: AppServer, email: str) -> None:
    page.goto(server.base + "/")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=email).click()  # the provider's one-click user
    page.get_by_text(PEOPLE[email]).wait_for()
    page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink").first.wait_for()


def _nav(page) -> set[str]:
    """The page names the sidebar offers (each link's text ends with its title, after its icon)."""
    links = page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink").all_inner_texts()
    return {text.strip().splitlines()[-1] for text in links}


def _studio(server: AppServer) -> Studio:
    return Studio.open(Settings(data_dir=server.data_dir, public_base_url=server.base + "/cdn"))


def test_an_anonymous_visitor_sees_only_the_sign_in(studio_server, visitor) -> None:
    visitor.goto(studio_server.base + "/")
    visitor.get_by_role("button", name="Sign in").wait_for()
    assert _nav(visitor) == set()
    visitor.goto(studio_server.base + "/task_history")
    visitor.get_by_role("button", name="Sign in").wait_for()
    assert visitor.get_by_text("Finished jobs").count() == 0
    assert visitor.get_by_text("Page not found").count() == 0  # a shared link asks to sign in, nothing more


def test_a_reviewer_browses_the_gallery_but_not_task_history(studio_server, visitor) -> None:
    _sign_in(visitor, studio_server, "cy@review.example.org")
    assert _nav(visitor) == {"Gallery"}
    visitor.get_by_text("job(s) match").wait_for()
    visitor.goto(studio_server.base + "/task_history")  # typed by hand
    visitor.get_by_text("Task history is not open to you (reviewer); you can use: Gallery.").wait_for()
    assert visitor.get_by_text("Finished jobs").count() == 0


def test_a_creator_cannot_act_on_another_creators_job(studio_server, visitor) -> None:
    studio = _studio(studio_server)
    try:
        theirs = actions.generate_image(studio, "dee's lighthouse", params={"size": "256x256"}, owner="dee@example.com")
    finally:
        studio.close()
    _sign_in(visitor, studio_server, "bo@example.com")
    assert _nav(visitor) == {"Image studio", "Video studio", "Compare", "Gallery"}
    visitor.get_by_role("link", name="Gallery").click()
    card = visitor.locator(f".st-key-card-{theirs.id}")
    # Media URLs are signed with sign-in on, and the browser shows them.
    thumbnail = card.locator("img[src*='/cdn/'][src*='signature=']")
    visitor.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=thumbnail.element_handle())
    card.get_by_role("button", name="Details").click()
    dialog = visitor.get_by_role("dialog")
    dialog.get_by_text("dee's lighthouse").wait_for()
    for action in ("Delete", "Retry", "Cancel"):
        assert dialog.get_by_role("button", name=action, exact=True).count() == 0
    visitor.keyboard.press("Escape")
    visitor.get_by_role("link", name="Video studio").click()
    visitor.get_by_text("Your videos").wait_for()
    assert visitor.get_by_text("dee's lighthouse").count() == 0


def test_an_admin_sees_everything(studio_server, visitor) -> None:
    _sign_in(visitor, studio_server, "ana@example.com")
    assert _nav(visitor) == {"Image studio", "Video studio", "Compare", "Gallery", "Task history", "System"}
    visitor.get_by_role("link", name="Task history").click()
    visitor.get_by_text("Finished jobs", exact=True).wait_for()
    visitor.get_by_role("link", name="System").click()
    visitor.get_by_text("Providers").first.wait_for()
    assert "mediagen-test-secret" not in visitor.content() and "c" * 40 not in visitor.content()
    visitor.get_by_role("button", name="Sign out").click()
    # Signing out also ends the session at the provider, which asks to confirm and sends us back.
    visitor.get_by_role("button", name="End session").click()
    visitor.get_by_role("button", name="Sign in").wait_for()
    assert _nav(visitor) == set()


def test_someone_without_a_role_is_told_whom_to_ask(studio_server, visitor, identity_provider) -> None:
    visitor.goto(studio_server.base + "/")
    visitor.get_by_role("button", name="Sign in").click()
    visitor.locator("input[name=sub]").fill("stranger@elsewhere.net")
    visitor.get_by_role("button", name="Authorize").click()
    visitor.get_by_text("No access yet").wait_for()
    visitor.get_by_text("Ask ana@example.com to add it to MEDIAGEN_ROLES").wait_for()
    assert _nav(visitor) == set()


def test_the_client_secrets_stay_out_of_the_log_and_the_database(studio_server) -> None:
    log = Path(studio_server.data_dir).parent / "streamlit.log"
    database = Path(studio_server.data_dir) / "mediagen.db"
    for secret in (b"mediagen-test-secret", b"c" * 40):
        assert secret not in log.read_bytes() and secret not in database.read_bytes()


def test_media_urls_are_signed_and_expire(studio_server) -> None:
    """With sign-in on, /cdn serves only signed URLs until they expire, like presigned S3 URLs: the
    app signs the URLs it answers with, the CLI and other processes sign theirs with the same key."""
    base = studio_server.base
    studio = _studio(studio_server)
    try:
        _info, key = create_key(studio, "ana@example.com", "media")
    finally:
        studio.close()
    answer = httpx.post(
        f"{base}/api/images/generate",
        json={"prompt": "a signed harbour", "size": "256x256"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"][0]["url"]
    plain, _, query = url.partition("?")
    assert plain.startswith(f"{base}/cdn/image/") and "expires=" in query and "signature=" in query
    whole = httpx.get(url, timeout=10)
    assert whole.status_code == 200 and whole.content[:8] == b"\x89PNG\r\n\x1a\n"
    part = httpx.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:200]

    def refused(link: str) -> str:
        answer = httpx.get(link, timeout=10)
        assert answer.status_code == 403
        return answer.text

    assert refused(plain) == "this media link is not signed (sign-in is on); open it from the studio"
    assert "not valid" in refused(url[:-3] + "xyz")
    assert "not valid" in refused(plain.replace(".png", ".thumb.webp") + "?" + query)  # another file
    assert "not signed" in refused(f"{base}/cdn/image/")

    # Another process (the CLI's way): it finds the running app and its sign-in in the data dir.
    short = Studio.open(Settings(data_dir=studio_server.data_dir, presign_ttl_s=1))
    try:
        job = actions.generate_image(short, "short-lived", params={"size": "256x256"}, owner="ana@example.com")
        brief = short.storage.url(job.assets[0].key)
    finally:
        short.close()
    assert brief.startswith(f"{base}/cdn/image/") and httpx.get(brief, timeout=10).status_code == 200
    time.sleep(2.1)  # past its one-second lifetime
    assert "expired" in refused(brief)
