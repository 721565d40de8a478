import streamlit as st

from mediagen.admin import history, reports
from mediagen.errors import MediagenError
from mediagen.jobs import browse
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.ui import services, task_history, widgets
from mediagen.ui.access import StudioPage

user = services.page_user(StudioPage.TASK_HISTORY)
studio = services.studio()
st.title("Task history")

with st.container(horizontal=True, vertical_alignment="bottom"):
    since, until = task_history.period("h-period")
    statuses = st.multiselect(
        "Status", [s.value for s in JobStatus], key="h-status", format_func=widgets.status_label, width=260
    )
    kinds = st.multiselect("Kind", [k.value for k in JobKind], key="h-kind", width=180)
    models = st.multiselect("Model", browse.models_in_use(studio), key="h-model", width=240)
    owner = st.selectbox("User", reports.owners(studio), index=None, key="h-owner", placeholder="Everyone", width=200)

filters = browse.JobFilters(kinds=kinds, statuses=statuses, models=models, since=since, until=until, owner=owner)
try:
    lines = reports.stat_frame(studio, filters)
    counts = history.status_counts(studio, filters, lines)
    summary = reports.overview(studio, lines, filters)
except MediagenError as exc:
    widgets.show_error(exc)
    st.stop()

with st.container(horizontal=True):
    st.metric("Jobs", f"{sum(counts.values()):,}")
    for status in JobStatus:
        st.metric(widgets.status_label(status), f"{counts[status.value]:,}")
st.caption("Finished jobs are counted when they end, by the day they were created; deleted jobs still count.")

overview, usage, table = st.tabs(["Overview", "Usage & cost", "Jobs"])
with overview:
    task_history.overview(studio, lines, filters, summary)
with usage:
    task_history.usage_and_cost(studio, lines, filters, summary)
with table:
    task_history.jobs_table(studio, filters)
