import streamlit as st

from mediagen.jobs import actions
from mediagen.jobs.status import JobKind
from mediagen.ui import services, submissions, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.panels import video_panel

user = services.page_user(StudioPage.VIDEO_STUDIO)
studio = services.studio()
owner = services.current_owner()
st.title("Video studio")
form, panel = st.columns([2, 3], gap="large")

with form:
    request = widgets.generation_form(studio, JobKind.VIDEO, placeholder="Slow waves rolling onto a beach at sunset")
    submissions.generate_button(
        JobKind.VIDEO,
        request,
        lambda: actions.submit_video(
            studio,
            request.prompt,
            model=request.model,
            params=request.params,
            owner=owner,
            webhook_url=request.webhook_url,
        ),
        icon=":material/movie:",
        working="Queueing…",
    )

with panel:
    video_panel(studio, owner)
