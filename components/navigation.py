"""Which page a link opens: every page by its own name, an unknown name as a notice on the page.

Streamlit 1.67 serves the default page at "/" only: ``st.Page.url_path`` is "" for it, so its own name
("/overview") matches no page. A browser's first request for a name no page claims gets a
``page_not_found`` message, which the frontend shows as a blocking "Page not found" dialog before it
runs the default page. The name a browser asked for reaches the server only on the session's first
run (``pages_manager.intended_page_name``; later runs name a page by its hash), so :func:`route`
remembers it for the session and registers a page for it: the default page under its own name, or a
hidden page that says the name is unknown and lists the pages.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from components.text import escape_markdown

# The name this browser session asked for on its first run ("" for "/").
ASKED_KEY = "nav.asked_path"


@dataclass(frozen=True)
class PageSpec:
    """A page of the navigation: its script, sidebar title, icon and own name in the URL."""

    script: str
    title: str
    icon: str
    url_path: str


def requested_path() -> str:
    """The page name the browser asked for in this run: the URL's path after the app's base, on a
    session's first run; "" for "/" and on every later run."""
    ctx = get_script_run_ctx()
    return (ctx.pages_manager.intended_page_name or "") if ctx is not None else ""


def route(sections: dict[str, list[PageSpec]]) -> st.Page:
    """``st.navigation`` over ``sections``, the first page the default (served at "/"); the page to run.

    "/" and the default page's own name both open it; any other unknown name opens a notice.
    """
    asked = requested_path()
    if asked:
        st.session_state[ASKED_KEY] = asked
    asked = st.session_state.get(ASKED_KEY, "")
    specs = [spec for entries in sections.values() for spec in entries]
    default = specs[0]
    # The default page's own name was asked: it is served there, and "/" by a hidden copy, so the
    # sidebar marks it and the URL keeps its name.
    by_name = asked == default.url_path

    def page(spec: PageSpec) -> st.Page:
        return st.Page(spec.script, title=spec.title, icon=spec.icon, url_path=spec.url_path,
                       default=spec is default and not by_name)

    nav = {section: [page(spec) for spec in entries] for section, entries in sections.items() if entries}
    hidden = nav[next(iter(nav))]
    if by_name:
        hidden.append(st.Page(default.script, title=default.title, icon=default.icon, url_path="",
                              default=True, visibility="hidden"))
    # A name Streamlit can register (no "/", as typed) and that no page has: the notice takes it.
    elif asked and "/" not in asked and asked == asked.strip() and asked not in {s.url_path for s in specs}:
        hidden.append(st.Page(lambda: render_unknown_path(asked, specs), title="Page not found",
                              icon=":material/explore_off:", url_path=asked, visibility="hidden"))
    return st.navigation(nav)


def render_unknown_path(path: str, specs: list[PageSpec]) -> None:
    """The notice for a link to a page that does not exist: the name asked for and every page."""
    st.title("Page not found", anchor=False)
    st.warning(f"There is no page called “{escape_markdown(path)}” in TraderLens. Check the link, "
               "or open one of these pages:", icon=":material/explore_off:")
    for spec in specs:
        st.page_link(spec.script, label=f"{spec.title} — /{spec.url_path}", icon=spec.icon)
