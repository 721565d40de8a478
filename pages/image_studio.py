import dataclasses

import streamlit as st

from mediagen.db.tables import Job
from mediagen.jobs import actions
from mediagen.jobs.status import JobKind
from mediagen.ui import services, start_images, starting_points, submissions, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.media import recent_images
from mediagen.ui.prompt_history import recent_prompts_picker

user = services.page_user(StudioPage.IMAGE_STUDIO)
studio = services.studio()
owner = services.current_owner()
st.title("Image studio")
form, results = st.columns([2, 3], gap="large")

with form:
    start = starting_points.read_link(studio, JobKind.IMAGE)  # before the form: it prefills it
    starting_points.note(JobKind.IMAGE)
    start_images.banner(studio, JobKind.IMAGE, start)
    recent_prompts_picker(studio, JobKind.IMAGE, owner)
    request = widgets.generation_form(
        studio, JobKind.IMAGE, placeholder="A lighthouse on a cliff at dusk, warm light, long exposure"
    )
    images = start_images.image_inputs(studio, JobKind.IMAGE, request.model, start)
    request = dataclasses.replace(request, images=images.fingerprint)

    def generate() -> Job:
        with images.references(studio) as references:
            return actions.generate_image(
                studio,
                request.prompt,
                model=request.model,
                params=request.params,
                owner=owner,
                lineage=images.lineage,
                references=references,
                reader=user,
            )

    submissions.generate_button(JobKind.IMAGE, request, generate, icon=":material/auto_awesome:", working="Generating…")

with results:
    recent_images(studio, owner)
