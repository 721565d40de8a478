"""Sign-in and roles: the role table, the start-up refusal, and every page under AppTest for
each role (``AppTest.user`` with an ``[auth]`` section in its secrets)."""

from __future__ import annotations

from typing import Any

import pytest

from mediagen.auth.exposure import auth_problems, exposure_refusal
from mediagen.auth.roles import LOCAL_ADMIN, Role, User, role_for
from mediagen.errors import Forbidden
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobStatus
from mediagen.library import deletion

from ..support.markdown import shown

pytestmark = pytest.mark.one_database  # what it checks does not depend on the database

ROLES = {"ana@example.com": "admin", "example.com": "creator", "@review.example.org": "reviewer"}
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "x" * 32,
    "client_id": "mediagen",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
PAGES = {
    "pages/image_studio.py": "Image studio",
    "pages/video_studio.py": "Video studio",
    "pages/compare.py": "Compare",
    "pages/gallery.py": "Gallery",
    "pages/task_history.py": "Task history",
    "pages/system.py": "System",
}
OPEN_TO = {
    "admin": set(PAGES),
    "creator": {"pages/image_studio.py", "pages/video_studio.py", "pages/compare.py", "pages/gallery.py"},
    "reviewer": {"pages/gallery.py"},
}
EMAILS = {"admin": "ana@example.com", "creator": "bo@example.com", "reviewer": "cy@review.example.org"}


def test_roles_come_from_addresses_then_domains() -> None:
    assert role_for("Ana@Example.com", ROLES) is Role.ADMIN  # the address wins over its domain
    assert role_for("bo@example.com", ROLES) is Role.CREATOR
    assert role_for("cy@review.example.org", ROLES) is Role.REVIEWER
    assert role_for("dee@elsewhere.net", ROLES) is None
    assert role_for("someone@sub.example.com", ROLES) is None  # domains match exactly


@pytest.mark.parametrize(
    "address, signed_in, allowed, refused",
    [
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("::1", False, False, False),
        ("0.0.0.0", False, False, True),
        ("", False, False, True),  # Streamlit's default: every interface
        ("192.168.1.20", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_serving_beyond_this_machine_needs_sign_in(address, signed_in, allowed, refused) -> None:
    reason = exposure_refusal(address, signed_in, allowed)
    assert (reason is not None) == refused
    if reason:
        assert "MEDIAGEN_ALLOW_UNAUTHENTICATED=1" in reason and "[auth]" in reason


def _links(app) -> set[str]:
    """The page links in the sidebar: the navigation the user sees."""
    return {node.proto.label for node in app.sidebar if type(node).__name__ == "PageLink"}


def _sign_in(app, studio, role: str | None, email: str | None = None) -> Any:
    """A new browser session of a signed-in user (signing in always starts one)."""
    from streamlit.testing.v1 import AppTest

    studio.settings = studio.settings.model_copy(update={"roles": ROLES, "admin_contact": "ops@example.com"})
    session = AppTest.from_file(app._script_path, default_timeout=60)
    session.secrets["auth"] = AUTH
    if role == "anonymous":
        session.user = {"is_logged_in": False}
    else:
        address = email or EMAILS[str(role)]
        session.user = {"is_logged_in": True, "email": address, "name": address.split("@")[0].title()}
    return session.run()


@pytest.mark.parametrize("role", ["admin", "creator", "reviewer"])
def test_each_role_sees_its_pages_and_is_refused_the_others(app, studio, role) -> None:
    app = _sign_in(app, studio, role)
    assert not app.exception, app.exception
    assert _links(app) == {PAGES[page] for page in OPEN_TO[role]}
    assert any(f"{EMAILS[role]} · {role}" in m.value.replace("\\", "") for m in app.sidebar.markdown)
    for page, title in PAGES.items():
        app.switch_page(page).run()
        assert not app.exception, (page, app.exception)
        refusals = [shown(w.value)[0].strip() for w in app.warning if "not open to you" in w.value]
        if page in OPEN_TO[role]:
            assert refusals == [] and app.title[0].value == title, page
        else:
            usable = ", ".join(PAGES[p] for p in PAGES if p in OPEN_TO[role])
            assert refusals == [f"{title} is not open to you ({role}); you can use: {usable}."], page
            assert not [t for t in app.title if t.value == title], page


def test_anonymous_visitors_only_see_the_sign_in(app, studio) -> None:
    app = _sign_in(app, studio, "anonymous")
    assert [b.label for b in app.button] == ["Sign in"]
    assert not _links(app) and not app.title[0].value.startswith("Gallery")


def test_signed_in_strangers_are_told_whom_to_ask(app, studio) -> None:
    app = _sign_in(app, studio, None, email="dee@elsewhere.net")
    [warning] = [w.value.replace("\\", "") for w in app.warning]  # shown as Markdown, escaped
    assert "dee@elsewhere.net" in warning and "ops@example.com" in warning and "MEDIAGEN_ROLES" in warning
    assert [b.label for b in app.button] == ["Sign out"]


def test_local_mode_is_one_admin_with_a_banner(app) -> None:
    assert any("Local mode" in i.value and "127.0.0.1" in i.value for i in app.sidebar.info)
    assert _links(app) == set(PAGES.values())


def test_jobs_are_owned_and_only_owners_or_admins_change_them(studio) -> None:
    bo = User("bo@example.com", "Bo", Role.CREATOR)
    dee = User("dee@example.com", "Dee", Role.CREATOR)
    cy = User("cy@review.example.org", "Cy", Role.REVIEWER)
    admin = User("ana@example.com", "Ana", Role.ADMIN)
    queued = actions.submit_video(studio, "bo's clip", owner=bo.email)
    done = actions.generate_image(studio, "bo's picture", params={"size": "256x256"}, owner=bo.email)
    for stranger in (dee, cy):
        with pytest.raises(Forbidden, match=r"belongs to bo@example\.com"):
            actions.cancel_job(studio, queued.id, actor=stranger)
        with pytest.raises(Forbidden):
            deletion.delete_jobs(studio, [done.id], actor=stranger)
    assert queries.get_job(studio, queued.id).status == JobStatus.QUEUED and queries.get_job(studio, done.id)
    canceled = actions.cancel_job(studio, queued.id, actor=bo)
    with pytest.raises(Forbidden):
        actions.retry_job(studio, canceled.id, actor=dee)
    retried = actions.retry_job(studio, canceled.id, actor=admin)
    assert retried.owner == admin.email  # the retry is the admin's own job
    assert deletion.delete_jobs(studio, [done.id], actor=admin).jobs == 1
    assert LOCAL_ADMIN.may_change("anyone")


def test_a_creator_cannot_act_on_another_creators_job_in_the_gallery(app, studio) -> None:
    theirs = actions.cancel_job(studio, actions.submit_video(studio, "dee's clip", owner="dee@example.com").id)
    app = _sign_in(app, studio, "creator")
    app.switch_page("pages/gallery.py").run()
    app.button(key=f"open-{theirs.id}").click().run()
    assert not app.exception, app.exception
    labels = {b.label for b in app.button}
    assert "Retry" not in labels and "Delete" not in labels  # neither is offered
    app.switch_page("pages/video_studio.py").run()
    assert "dee's clip" not in [t.value for t in app.text]  # the panel lists the user's own videos


def test_a_half_written_auth_section_is_named_at_start_up() -> None:
    complete = {**AUTH}
    assert auth_problems(complete) == []
    assert auth_problems({"redirect_uri": "http://x/callback", "client_id": "c"}) == [
        "[auth] needs cookie_secret",
        "[auth] redirect_uri must end in /oauth2callback",
        "[auth] needs client_secret",
        "[auth] needs server_metadata_url",
    ]
    named = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": "s", "google": {"client_id": "c"}}
    assert auth_problems(named) == ["[auth.google] needs client_secret", "[auth.google] needs server_metadata_url"]
