"""The frame around every page: brand and the database the app is connected to."""

from __future__ import annotations

import streamlit as st

# Inline SVG so the brand needs no static files. The wordmark sits on the navy sidebar (light
# text); the icon alone shows in the header when the sidebar is collapsed.
_LENS = (
    '<circle cx="17" cy="17" r="11" fill="none" stroke="#5fc4c9" stroke-width="3.2"/>'
    '<line x1="25" y1="25" x2="33" y2="33" stroke="#5fc4c9" stroke-width="3.6" stroke-linecap="round"/>'
    '<polyline points="10,21 15,15 19,18 24,11" fill="none" stroke="#e69f00" stroke-width="2.4" '
    'stroke-linecap="round" stroke-linejoin="round"/>'
)
WORDMARK_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="190" height="38" viewBox="0 0 190 38">'
    f"{_LENS}"
    '<text x="43" y="26" font-family="Helvetica, Arial, sans-serif" font-size="21" '
    'font-weight="700" fill="#e8eef5">Trader<tspan fill="#5fc4c9">Lens</tspan></text></svg>'
)
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="38" height="38" viewBox="0 0 38 38">'
    f"{_LENS.replace('#5fc4c9', '#0b6e79')}</svg>"
)


def render_brand() -> None:
    """The TraderLens logo at the top of the sidebar."""
    st.logo(WORDMARK_SVG, icon_image=ICON_SVG, size="large")


def render_connection(backend: str, location: str) -> None:
    """Which database the app reads (never its credentials), small, at the foot of the sidebar."""
    # In a code span a path or host name is shown as it is (no Markdown), once its backticks go.
    st.sidebar.caption(f":material/database: {backend}  \n`{location.replace('`', '')}`")


def route_through_app() -> None:
    """Send a page that was started without app.py back through app.py.

    Until the first ``st.navigation`` call in a server process, Streamlit keeps its legacy
    ``pages/`` discovery on: the first visitor who opens a deep link such as ``/data`` would get
    that page alone, without the frame, theme-wide layout or navigation. Switching the legacy
    mode off and rerunning makes Streamlit run app.py, which routes to the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
