import streamlit as st

from mediagen import browse
from mediagen.errors import MediagenError
from mediagen.states import JobKind, JobStatus
from mediagen.ui import services, widgets
from mediagen.ui.gallery import card_grid, date_range, pager

studio = services.studio()
st.title("Gallery")

with st.container(horizontal=True, vertical_alignment="bottom"):
    kinds = st.multiselect("Kind", [k.value for k in JobKind], key="g-kind", width=180)
    statuses = st.multiselect(
        "Status", [s.value for s in JobStatus], key="g-status", format_func=widgets.status_label, width=260
    )
    models = st.multiselect("Model", browse.models_in_use(studio), key="g-model", width=240)
    since, until = date_range("Created between", key="g-dates")
    text = st.text_input("Search prompts", key="g-text", placeholder="words in the prompt", width=240)
    order = st.segmented_control("Order", ["Newest", "Oldest"], default="Newest", key="g-order")
    size = st.selectbox("Per page", browse.PAGE_SIZES, index=1, key="g-size", width=100)

filters = browse.JobFilters(kinds=kinds, statuses=statuses, models=models, since=since, until=until, text=text or "")
try:
    total = browse.count_jobs(studio, filters)
    cursor = pager.current(filters, order, size)
    page = browse.page_of_jobs(studio, filters, after=cursor, limit=size, newest_first=order != "Oldest")
except MediagenError as exc:
    widgets.show_error(exc)
    st.stop()

st.caption(f"{total:,} job(s) match · page {pager.number()}")
card_grid(studio, page.jobs)
pager.controls(page.next_cursor)
