import streamlit as st

from mediagen import browse, history
from mediagen.errors import MediagenError
from mediagen.states import JobKind, JobStatus
from mediagen.ui import services, widgets
from mediagen.ui.gallery import date_range

studio = services.studio()
st.title("Task history")

with st.container(horizontal=True, vertical_alignment="bottom"):
    statuses = st.multiselect(
        "Status", [s.value for s in JobStatus], key="h-status", format_func=widgets.status_label, width=280
    )
    kinds = st.multiselect("Kind", [k.value for k in JobKind], key="h-kind", width=180)
    models = st.multiselect("Model", browse.models_in_use(studio), key="h-model", width=260)
    since, until = date_range("Created between", key="h-dates")

filters = browse.JobFilters(kinds=kinds, statuses=statuses, models=models, since=since, until=until)
try:
    frame = history.history_frame(studio, filters)
except MediagenError as exc:
    widgets.show_error(exc)
    st.stop()

counts = history.status_counts(frame)
with st.container(horizontal=True):
    st.metric("Jobs", len(frame))
    for status in JobStatus:
        st.metric(widgets.status_label(status), counts.get(status.value, 0))

over_time = history.jobs_over_time(frame)
if not over_time.empty:
    st.bar_chart(over_time, y_label="jobs", height=220)

selection = st.dataframe(
    frame,
    key="h-table",
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
        "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
        "finished": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm:ss"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        "attempts": st.column_config.NumberColumn("attempts", help="Times a worker picked the job up"),
    },
)
st.download_button(
    "Download CSV",
    history.to_csv(frame),
    file_name="mediagen-jobs.csv",
    mime="text/csv",
    key="h-csv",
    icon=":material/download:",
    on_click="ignore",
)

rows = selection.selection.rows if selection else []
if rows:
    job_id = frame.iloc[rows[0]]["id"]
    st.subheader(f"Timeline of job {job_id}")
    st.dataframe(history.events_frame(studio, job_id), hide_index=True, key="h-events")
    deliveries = history.webhook_attempts_frame(studio, job_id)
    if not deliveries.empty:
        st.subheader("Webhook deliveries")
        st.dataframe(deliveries, hide_index=True, key="h-webhooks")
else:
    st.caption("Select a row to see its event timeline.")
