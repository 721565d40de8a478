import streamlit as st

from mediagen import jobs, runtime

studio = runtime.studio()
st.title("mediagen")
st.caption("Images and videos from one studio. Every result is copied into storage we own.")
recent = jobs.list_jobs(studio, limit=20)
if not recent:
    st.info('No jobs yet. Try `python -m mediagen image "a lighthouse at dusk"`.')
for job in recent:
    data = jobs.job_to_dict(studio, job)
    st.write(f"**{job.kind}** · {job.status} · {job.model} · {job.prompt[:80]}")
    for asset in data["assets"]:
        if asset["content_type"].startswith("image/"):
            st.image(asset["thumbnail_url"], width=192)
        else:
            st.video(asset["url"])
