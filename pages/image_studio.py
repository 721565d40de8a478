import streamlit as st

from mediagen.errors import MediagenError
from mediagen.jobs import actions, queries
from mediagen.jobs.status import JobKind, JobStatus
from mediagen.ui import services, widgets
from mediagen.ui.access import StudioPage
from mediagen.ui.media import image_results

user = services.page_user(StudioPage.IMAGE_STUDIO)
studio = services.studio()
st.title("Image studio")
form, results = st.columns([2, 3], gap="large")

with form:
    form_input = widgets.generation_form(
        studio,
        JobKind.IMAGE,
        placeholder="A lighthouse on a cliff at dusk, warm light, long exposure",
        icon=":material/auto_awesome:",
    )
    if form_input.submitted:
        st.session_state.pop("image-error", None)
        with st.status("Generating…", expanded=False) as status:
            try:
                job = actions.generate_image(
                    studio,
                    form_input.prompt,
                    model=form_input.model,
                    params=form_input.params,
                    owner=services.current_owner(),
                )
            except MediagenError as exc:
                st.session_state["image-error"] = exc
                status.update(label="Nothing was generated", state="error")
            else:
                st.session_state["image-last-job"] = job.id
                done = job.status == JobStatus.SUCCEEDED
                status.update(
                    label=f"{len(job.assets)} image(s) in {widgets.elapsed(job)}" if done else "Generation failed",
                    state="complete" if done else "error",
                )
    if "image-error" in st.session_state:
        widgets.show_error(st.session_state["image-error"])

with results:
    last = st.session_state.get("image-last-job")
    if last is None:
        st.info("Your images appear here. Every result is stored and listed in the Gallery.")
    else:
        image_results(studio, queries.get_job(studio, last))
