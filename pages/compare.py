import streamlit as st

from mediagen.ui import compare, services

user = compare.page_user()
studio = services.studio()
st.title("Compare")
compare.page(studio, user)
