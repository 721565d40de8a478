"""Library actions in the gallery and the details dialog: star, collect, zip, delete."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from mediagen.api.links import zip_link
from mediagen.db.tables import Asset, Job
from mediagen.errors import MediagenError
from mediagen.jobs import browse, queries
from mediagen.jobs.status import JobStatus
from mediagen.library import collections, deletion, stars, zips
from mediagen.studio import Studio
from mediagen.ui import services, widgets

SELECTED = "g-selected"


def zip_url(
    studio: Studio,
    *,
    collection_id: int | None = None,
    job_ids: Sequence[str] = (),
    filters: browse.JobFilters | None = None,
    name: str,
) -> str:
    owner = services.signed_in_user().email
    return zip_link(
        studio.settings, owner, collection_id=collection_id, job_ids=tuple(job_ids), filters=filters, name=name
    )


def _toggle_star(studio: Studio, owner: str, asset_id: int) -> None:
    try:
        stars.toggle_star(studio, owner, asset_id)
    except MediagenError as exc:  # deleted by someone else meanwhile
        st.toast(widgets.plain(str(exc)), icon=":material/error:")


def gallery_zip_link(studio: Studio, filters: browse.JobFilters, total: int, collection_name: str | None) -> None:
    """The chosen collection as a zip, or else every file of the jobs the filters match."""
    if filters.collection_id is not None:
        name = collection_name or "collection"
        url = zip_url(studio, collection_id=filters.collection_id, name=name)
        st.link_button("Download collection as zip", url, icon=":material/folder_zip:")
    elif total:
        too_many = total > zips.MAX_ZIP_FILES
        st.link_button(
            "Download all as zip",
            zip_url(studio, filters=filters, name="gallery"),
            icon=":material/folder_zip:",
            disabled=too_many,
            help=f"At most {zips.MAX_ZIP_FILES} files per zip: narrow the filters" if too_many else None,
        )


def star_button(studio: Studio, owner: str, asset: Asset, starred: bool) -> None:
    label, icon = ("Starred", ":material/star:") if starred else ("Star", ":material/star_border:")
    st.button(
        label,
        key=f"star-{asset.id}",
        icon=icon,
        help="Star it to find it again; retention keeps it",
        on_click=_toggle_star,  # before the rerun, so the button shows the new state
        args=(studio, owner, asset.id),
    )


def collect_popover(studio: Studio, owner: str, asset_ids: Sequence[int], key: str) -> None:
    """Add the assets to one of the user's collections, or to a new one."""
    with st.popover("Add to collection", icon=":material/collections_bookmark:"):
        existing = dict(collections.collections_of(studio, owner))
        chosen = st.selectbox(
            "Collection", list(existing), format_func=existing.get, index=None, key=f"{key}-pick", placeholder="Choose"
        )
        # No max_chars: the browser would cut a longer paste without a word; the name is checked
        # on Add, which says how long it is and what is allowed.
        new_name = st.text_input("…or a new one", key=f"{key}-new")
        if st.button("Add", key=f"{key}-add", type="primary", disabled=chosen is None and not new_name.strip()):
            try:
                target = chosen if chosen is not None else collections.create_collection(studio, owner, new_name).id
                added = collections.add_to_collection(studio, owner, target, asset_ids)
            except MediagenError as exc:
                widgets.show_error(exc)
            else:
                name = widgets.plain(existing.get(target, new_name.strip()))
                st.toast(f"Added {added} file(s) to {name}" if added else f"Already in {name}")


def _close(key: str) -> None:
    st.session_state[key] = False


def delete_with_confirmation(studio: Studio, job_ids: Sequence[str], key: str, *, files: int) -> bool:
    """A Delete button that asks first; True once the jobs are deleted. The question and its two
    answers open in a popover of their own, so they line up together wherever the button sits
    (a row of buttons, the details dialog)."""
    with st.popover("Delete", icon=":material/delete:", key=key, on_change="rerun"):
        st.warning(
            f"Delete {len(job_ids)} job(s) and their {files} file(s), thumbnails and converted copies? "
            "This cannot be undone."
        )
        with st.container(horizontal=True, vertical_alignment="center"):
            confirmed = st.button("Delete for good", key=f"{key}-yes", type="primary", icon=":material/delete_forever:")
            st.button("Keep", key=f"{key}-no", on_click=_close, args=(key,))
        if not confirmed:
            return False
        try:
            done = deletion.delete_jobs(studio, job_ids, actor=services.signed_in_user())
        except MediagenError as exc:
            widgets.show_error(exc)
            return False
    note = f" ({done.objects_pending} file(s) will be removed on a later try)" if done.objects_pending else ""
    st.toast(f"Deleted {done.jobs} job(s){note}")
    return True


def selection(jobs_on_page: Sequence[Job] = ()) -> set[str]:
    """The selected job ids, kept across pages; the page's checkboxes (whose new values are in
    session state before the run starts) are applied first, so counts above the grid are current."""
    chosen: set[str] = st.session_state.setdefault(SELECTED, set())
    for job in jobs_on_page:
        ticked = st.session_state.get(f"sel-{job.id}")
        if ticked is True:
            chosen.add(job.id)
        elif ticked is False:
            chosen.discard(job.id)
    return chosen


def select_box(job: Job) -> None:
    st.checkbox("Select", value=job.id in selection(), key=f"sel-{job.id}")


def _clear_selection() -> None:
    for job_id in st.session_state.pop(SELECTED, set()):
        st.session_state.pop(f"sel-{job_id}", None)


def bulk_actions(studio: Studio, owner: str, jobs_on_page: Sequence[Job]) -> None:
    """What can be done with the selected jobs, on this page and others: collect, zip, delete."""
    chosen = selection(jobs_on_page)
    selected_jobs = queries.get_jobs(studio, sorted(chosen)) if chosen else []
    chosen.intersection_update(job.id for job in selected_jobs)  # forget jobs deleted meanwhile
    with st.container(horizontal=True, vertical_alignment="center", key="g-bulk"):
        st.caption(f"{len(chosen)} selected")
        if not chosen:
            return
        asset_ids = [asset.id for job in selected_jobs for asset in job.assets]
        collect_popover(studio, owner, asset_ids, key="bulk-collect")
        st.link_button(
            "Download zip", zip_url(studio, job_ids=sorted(chosen), name="selection"), icon=":material/folder_zip:"
        )
        files = len(asset_ids)
        user = services.signed_in_user()
        if not all(user.may_change(job.owner) for job in selected_jobs):
            st.caption("Only your own jobs can be deleted.")
        elif any(not JobStatus(job.status).is_final for job in selected_jobs):
            st.caption("Queued or running jobs can't be deleted; cancel them first.")
        elif delete_with_confirmation(studio, sorted(chosen), "bulk-delete", files=files):
            _clear_selection()
            st.rerun()
        st.button("Clear selection", key="g-clear", on_click=_clear_selection)


def deletion_backlog(backlog: deletion.DeletionBacklog) -> None:
    """The System page's line on files of deleted jobs that storage has not let go of yet."""
    if not backlog.objects:
        st.caption("No files of deleted jobs are waiting to be removed.")
        return
    since = f" since {backlog.oldest:%Y-%m-%d %H:%M} UTC" if backlog.oldest else ""
    st.warning(
        widgets.plain(
            f"{backlog.objects:,} file(s) of deleted jobs wait to be removed from storage{since}; "
            f"the workers retry them. Last error: {backlog.last_error or 'none yet'}"
        ),
        icon=":material/delete_sweep:",
    )
