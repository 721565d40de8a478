import streamlit as st

from mediagen import jobs
from mediagen.errors import MediagenError
from mediagen.states import JobKind
from mediagen.ui import services, widgets
from mediagen.ui.panels import video_panel

studio = services.studio()
st.title("Video studio")
models = studio.catalog.models(JobKind.VIDEO)
form, panel = st.columns([2, 3], gap="large")

with form:
    prompt = st.text_area(
        "Prompt",
        key="video-prompt",
        height=140,
        max_chars=studio.settings.max_prompt_chars,
        placeholder="Slow waves rolling onto a beach at sunset",
    )
    names = [m.name for m in models]
    model = st.selectbox("Model", names, key="video-model", format_func=lambda n: studio.catalog.get(n).label)
    params = widgets.param_inputs(studio.catalog.get(model), "video")
    if st.button("Generate", type="primary", key="video-generate", icon=":material/movie:"):
        st.session_state.pop("video-error", None)
        try:
            job = jobs.submit_video(studio, prompt, model=model, params=params, owner=services.current_owner())
        except MediagenError as exc:
            st.session_state["video-error"] = exc
        else:
            st.toast(f"Queued video job {job.id}", icon=":material/schedule:")
    if "video-error" in st.session_state:
        widgets.show_error(st.session_state["video-error"])

with panel:
    video_panel(studio, services.current_owner())
