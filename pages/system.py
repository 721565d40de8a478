import streamlit as st

from mediagen import server
from mediagen.admin import system
from mediagen.library import retention
from mediagen.ui import api_keys, services, widgets
from mediagen.ui import library as library_ui
from mediagen.ui.access import StudioPage

user = services.page_user(StudioPage.SYSTEM)
studio = services.studio()
st.title("System")
report = system.system_report(studio)

st.subheader("Providers")
for provider in report.providers:
    with st.container(horizontal=True, vertical_alignment="center", key=f"sys-provider-{provider.name}"):
        st.markdown(f"**{widgets.plain(provider.label)}**", width="content")
        if provider.configured:
            st.badge("configured", icon=":material/check_circle:", color="green")
            st.caption(widgets.plain(", ".join(provider.models)))
        else:
            st.badge("not configured", icon=":material/do_not_disturb_on:", color="gray")
            if provider.switch_on:
                st.caption(f"Set `{provider.switch_on}` to offer its models.")  # a variable name of ours

st.subheader("Storage")
st.text(f"Backend: {report.storage}\nPublic base URL: {report.public_base_url}")
with st.container(horizontal=True):
    run_check = st.button("Run storage self-check", key="sys-selfcheck", icon=":material/fact_check:")
    # Only what this backend has to set up (an S3 bucket's rules; a local folder has none).
    setup = studio.storage.setup
    prepare = setup is not None and st.button(f"Ensure {setup}", key="sys-prepare", icon=":material/rule_settings:")
if run_check:
    for check in system.storage_self_check(studio):
        (st.success if check.ok else st.error)(f"{check.name}: {widgets.plain(check.detail)}")
if prepare:
    for note in studio.storage.prepare():
        (st.error if note.startswith("could not") else st.success)(widgets.plain(note))
if report.deletions is not None:
    library_ui.deletion_backlog(report.deletions)

st.subheader("Database")
st.code(report.database, language=None)

st.subheader("Workers")
here = server.worker()
if here is not None:
    st.text(f"Worker in this server process: {'running' if here.running else 'stopped'}")
elif studio.settings.worker_in_app:
    st.text("Worker in this server process: not running")
else:
    st.text("Worker in this server process: off (MEDIAGEN_WORKER_IN_APP=false); separate workers do the work")
if not report.workers:
    st.warning("No worker has ticked yet: video jobs will wait until the app or a worker runs.")
for worker in report.workers:
    last = f"{worker.last_tick_at:%Y-%m-%d %H:%M:%S} UTC" if worker.last_tick_at else "never"
    line = f"{worker.worker_id}: last tick {last}, {worker.ticks} ticks"
    if worker.stopped:
        st.caption(widgets.plain(f"{line} (stopped)"))
    elif worker.stale:
        st.error(widgets.plain(f"{line}: no tick for too long, this worker looks dead"))
    else:
        st.success(widgets.plain(line))
    if worker.last_error and not worker.stopped:
        st.warning(widgets.plain(f"last tick failed: {worker.last_error}"))

st.subheader("API keys")
api_keys.manage(studio)

st.subheader("Active jobs")
with st.container(horizontal=True):
    for status, count in report.active_jobs.items():
        st.metric(widgets.status_label(status), count)

st.subheader("Webhooks")
if not report.webhooks_enabled:
    st.caption("Off: set MEDIAGEN_WEBHOOK_SECRET to let video jobs carry a webhook URL.")
with st.container(horizontal=True):
    for status, count in report.webhooks.items():
        st.metric(f"Deliveries {status}", count)
if report.oldest_pending_webhook is not None:
    st.caption(f"Oldest waiting delivery since {report.oldest_pending_webhook:%Y-%m-%d %H:%M:%S} UTC")

st.subheader("Retention")
plan = retention.report(studio)
if plan is None:
    st.caption("Off: set MEDIAGEN_RETENTION_DAYS to delete finished jobs after that many days.")
else:
    verb = "would delete" if plan.dry_run else "deletes"
    summary = (
        f"Jobs finished and created before {plan.cutoff:%Y-%m-%d %H:%M} UTC ({plan.days} days): the policy {verb} "
        f"{plan.jobs:,} job(s) with {plan.assets:,} file(s), {widgets.human_bytes(plan.bytes)}"
    )
    (st.info if plan.dry_run else st.warning)(summary)
    if plan.oldest is not None:
        st.caption(f"Oldest: {plan.oldest:%Y-%m-%d}. Kept because starred or in a collection: {plan.kept:,}.")
    if plan.dry_run:
        st.caption("Dry run: nothing is deleted until MEDIAGEN_RETENTION_DRY_RUN=false.")
