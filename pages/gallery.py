import streamlit as st

from mediagen.errors import MediagenError
from mediagen.jobs import browse
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.library import collections
from mediagen.ui import job_story, links, services, widgets
from mediagen.ui import library as library_ui
from mediagen.ui.access import StudioPage
from mediagen.ui.gallery import card_grid, date_range, pager
from mediagen.ui.media import open_job_for_link, open_linked_details

user = services.page_user(StudioPage.GALLERY)
studio = services.studio()
owner = user.email
st.title("Gallery")

models = browse.models_in_use(studio)
owned = dict(collections.collections_of(studio, owner))
for note in links.read_link_once(
    choices={
        "kind": [k.value for k in JobKind],
        "status": [s.value for s in JobStatus],
        "model": models,
        "order": ["Newest", "Oldest"],
        "size": list(browse.PAGE_SIZES),
        "collection": list(owned),
    },
    parse={
        "size": int,
        "collection": int,
        "starred": lambda text: text == "1",
        "comparisons": lambda text: text == "1",
    },
):
    st.caption(widgets.plain(note))
open_linked_details(job_story.JOB_PARAM)

# Defaults through session state, not widget arguments: a link may have set these keys already.
st.session_state.setdefault("g-order", "Newest")
st.session_state.setdefault("g-size", browse.PAGE_SIZES[1])
with st.container(horizontal=True, vertical_alignment="bottom"):
    kinds = st.multiselect("Kind", [k.value for k in JobKind], key="g-kind", width=180)
    statuses = st.multiselect(
        "Status", [s.value for s in JobStatus], key="g-status", format_func=widgets.status_label, width=260
    )
    chosen_models = st.multiselect("Model", models, key="g-model", width=240)
    since, until = date_range("Created between", key="g-dates")
    text = st.text_input("Search prompts", key="g-text", placeholder="words in the prompt", width=240)
with st.container(horizontal=True, vertical_alignment="bottom"):
    collection = st.selectbox(
        "Collection", list(owned), format_func=owned.get, index=None, key="g-collection", width=220
    )
    starred = st.toggle("Starred only", key="g-starred")
    comparisons_only = st.toggle(
        "Comparisons only", key="g-comparisons", help="One prompt on several models, each group as one card"
    )
    order = st.segmented_control("Order", ["Newest", "Oldest"], key="g-order")
    size = st.selectbox("Per page", browse.PAGE_SIZES, key="g-size", width=100)
    selecting = st.toggle("Select", key="g-selecting", help="Pick jobs to collect, download as a zip or delete")

filters = browse.JobFilters(
    kinds=kinds,
    statuses=statuses,
    models=chosen_models,
    since=since,
    until=until,
    text=text or "",
    starred_by=owner if starred else None,
    collection_id=collection,
    comparisons_only=comparisons_only,
)
# A comparison is one card, in place of its columns, unless the filters pick among its columns.
one_per_comparison = not filters.picks_jobs
try:
    total = browse.count_jobs(studio, filters, one_per_comparison=one_per_comparison)
    cursor = pager.current(filters, order, size)
    page = browse.page_of_jobs(
        studio,
        filters,
        after=cursor,
        limit=size,
        newest_first=order != "Oldest",
        one_per_comparison=one_per_comparison,
    )
except MediagenError as exc:
    widgets.show_error(exc)
    st.stop()

links.write_link(
    {
        "kind": kinds,
        "status": statuses,
        "model": chosen_models,
        "from": since,
        "to": until,
        "q": text.strip(),
        "collection": collection,
        "starred": "1" if starred else None,
        "comparisons": "1" if comparisons_only else None,
        "order": order if order == "Oldest" else None,
        "size": size if size != browse.PAGE_SIZES[1] else None,
        job_story.JOB_PARAM: open_job_for_link(),
    },
    cursor,
)
with st.container(horizontal=True, vertical_alignment="center"):
    st.caption(f"{total:,} job(s) match · page {pager.number()}")
    library_ui.gallery_zip_link(studio, filters, total, owned.get(collection) if collection is not None else None)
if selecting:
    library_ui.bulk_actions(studio, owner, page.jobs)
card_grid(studio, page.jobs, owner, filters, selecting=selecting, one_per_comparison=one_per_comparison)
pager.controls(page.next_cursor)
