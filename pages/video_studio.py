import streamlit as st

from mediagen.errors import MediagenError
from mediagen.jobs import actions
from mediagen.jobs.status import JobKind
from mediagen.ui import services, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.panels import video_panel

user = services.page_user(StudioPage.VIDEO_STUDIO)
studio = services.studio()
st.title("Video studio")
form, panel = st.columns([2, 3], gap="large")

with form:
    form_input = widgets.generation_form(
        studio, JobKind.VIDEO, placeholder="Slow waves rolling onto a beach at sunset", icon=":material/movie:"
    )
    if form_input.submitted:
        st.session_state.pop("video-error", None)
        try:
            job = actions.submit_video(
                studio,
                form_input.prompt,
                model=form_input.model,
                params=form_input.params,
                owner=services.current_owner(),
                webhook_url=form_input.webhook_url,
            )
        except MediagenError as exc:
            st.session_state["video-error"] = exc
        else:
            st.toast(f"Queued video job {job.id}", icon=":material/schedule:")
    if "video-error" in st.session_state:
        widgets.show_error(st.session_state["video-error"])

with panel:
    video_panel(studio, services.current_owner())
