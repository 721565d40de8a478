import dataclasses

import streamlit as st

from mediagen.db.tables import Job
from mediagen.jobs import actions
from mediagen.jobs.status import JobKind
from mediagen.ui import services, start_images, starting_points, submissions, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.panels import video_panel
from mediagen.ui.prompt_history import recent_prompts_picker

user = services.page_user(StudioPage.VIDEO_STUDIO)
studio = services.studio()
owner = services.current_owner()
st.title("Video studio")
form, panel = st.columns([2, 3], gap="large")

with form:
    start = starting_points.read_link(studio, JobKind.VIDEO)  # before the form: it prefills it
    starting_points.note(JobKind.VIDEO)
    start_images.banner(studio, JobKind.VIDEO, start)
    recent_prompts_picker(studio, JobKind.VIDEO, owner)
    request = widgets.generation_form(studio, JobKind.VIDEO, placeholder="Slow waves rolling onto a beach at sunset")
    images = start_images.image_inputs(studio, JobKind.VIDEO, request.model, start)
    request = dataclasses.replace(request, images=images.fingerprint)

    def submit() -> Job:
        with images.references(studio) as references:
            return actions.submit_video(
                studio,
                request.prompt,
                model=request.model,
                params=request.params,
                owner=owner,
                webhook_url=request.webhook_url,
                lineage=images.lineage,
                references=references,
                reader=user,
            )

    submissions.generate_button(JobKind.VIDEO, request, submit, icon=":material/movie:", working="Queueing…")

with panel:
    video_panel(studio, owner)
