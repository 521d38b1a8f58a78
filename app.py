"""TraderLens entrypoint: the router and frame. Every page's content lives in pages/."""

from __future__ import annotations

import streamlit as st

from components import engine, frame

st.set_page_config(
    page_title="TraderLens", page_icon=":material/troubleshoot:", layout="wide",
    initial_sidebar_state="expanded",
)

frame.render_brand()

# The first page is the default and is served at "/"; Data's url_path takes effect once an
# Overview page becomes the default.
pages = {
    "Admin": [st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data")],
}
# Navigation is declared before the database is opened: once st.navigation has run, Streamlit
# stops offering the legacy pages/ auto-discovery even if we stop below.
page = st.navigation(pages)

frame.render_connection(*engine.describe_connection())
# Opens and migrates the database once per process; an unreachable one stops here with one message.
engine.require_engine()

page.run()
