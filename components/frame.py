"""The frame around every page: brand and the database the app is connected to."""

from __future__ import annotations

import streamlit as st

from connectors.clock import BadTimeZone, reporting_zone

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
    """Which database the app reads (never its credentials) and whose days it reports in, small, at
    the foot of the sidebar of every page."""
    # In a code span a path or host name is shown as it is (no Markdown), once its backticks go.
    st.sidebar.caption(f":material/database: {backend}  \n`{location.replace('`', '')}`")
    st.sidebar.caption(f":material/schedule: Days, weeks and months in {reporting_zone_label()}",
                       help="The reporting time zone (TRADERLENS_REPORTING_TZ): it decides which day, week and "
                            "month every event belongs to. A broker closing its books on server time sets it "
                            "to that zone, e.g. Europe/Nicosia, or America/New_York+07:00 for the FX day that "
                            "starts at 17:00 in New York.")


def reporting_zone_label() -> str:
    """The reporting time zone as pages name it: "UTC", "America/New_York (UTC-05:00)"."""
    try:
        return reporting_zone().describe()
    except BadTimeZone:  # the page itself says why (opening the database refuses it)
        return "a time zone that does not exist"


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
