"""TraderLens entrypoint: the router and frame. Every page's content lives in pages/."""

from __future__ import annotations

import streamlit as st

from components import filters, frame, kpi_tiles, navigation, outage, page, params
from components.navigation import PageSpec
from server import scheduler
from server.engine import describe_connection

st.set_page_config(
    page_title="TraderLens", page_icon=":material/troubleshoot:", layout="wide",
    # "auto": open on a wide screen, collapsed on a phone (it covered 72% of a 390 px screen on every load).
    initial_sidebar_state="auto",
)

frame.render_brand()
kpi_tiles.render_phone_style()

# Each page adds its entry here when it exists; no placeholder pages. The first is the default,
# served at "/" and by its own name ("/overview"); navigation.route answers any other name with a notice.
pages = {
    "Executive": [PageSpec("pages/overview.py", title="Overview", icon=":material/monitoring:", url_path="overview")],
    "Retention": [PageSpec("pages/cohorts.py", title="Cohorts & retention", icon=":material/grid_on:",
                           url_path="cohorts"),
                  PageSpec("pages/funnels.py", title="Funnels & conversion", icon=":material/filter_alt:",
                           url_path="funnels"),
                  PageSpec("pages/lifecycle.py", title="Lifecycle", icon=":material/autorenew:", url_path="lifecycle"),
                  PageSpec("pages/segments.py", title="Segments", icon=":material/group_work:", url_path="segments"),
                  PageSpec("pages/predictions.py", title="Predictions", icon=":material/insights:",
                           url_path="predictions"),
                  PageSpec("pages/trader.py", title="Trader 360", icon=":material/person_search:",
                           url_path="trader")],
    "Admin": [PageSpec("pages/data.py", title="Data", icon=":material/database:", url_path="data")],
}
# Navigation is declared before the database is opened: once st.navigation has run, Streamlit
# stops offering the legacy pages/ auto-discovery even if we stop below.
chosen = navigation.route(pages)

frame.render_connection(*describe_connection())
# Opens and migrates the database once per process; an unreachable one stops here with one message.
db = page.open_engine()
# Keeps the feature snapshot current and refreshes saved segments every 5 minutes (one thread per
# process; TRADERLENS_SEGMENT_REFRESH_S=0 turns it off).
scheduler.start()
# A database that fails later in the run (a query, a cache miss) ends it with the same one banner;
# one that does not answer now gets the banner at once, and the page shows what the cache holds.
with outage.guard() as top:
    params.open_notices(top)  # a link's ignored settings are named at the top of the page
    outage.check(db)
    filters.render_global_filters(page.load_filter_options(), page.load_data_span())
    chosen.run()
