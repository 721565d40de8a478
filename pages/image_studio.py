import streamlit as st

from mediagen.jobs import actions
from mediagen.jobs.status import JobKind
from mediagen.ui import services, submissions, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.media import recent_images

user = services.page_user(StudioPage.IMAGE_STUDIO)
studio = services.studio()
owner = services.current_owner()
st.title("Image studio")
form, results = st.columns([2, 3], gap="large")

with form:
    request = widgets.generation_form(
        studio, JobKind.IMAGE, placeholder="A lighthouse on a cliff at dusk, warm light, long exposure"
    )
    submissions.generate_button(
        JobKind.IMAGE,
        request,
        lambda: actions.generate_image(studio, request.prompt, model=request.model, params=request.params, owner=owner),
        icon=":material/auto_awesome:",
        working="Generating…",
    )

with results:
    recent_images(studio, owner)
