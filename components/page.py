"""The seam every page stands on: cached loaders for its figures and the header that opens it.

A page reads as a storyboard::

    load_kpis = page.loader(kpis.compute_kpis, spinner="Computing KPIs…")
    view = page.header("Overview", caption="…")
    kpi_tiles.render_kpi_groups(load_kpis(date_range=view.date_range, trader_filter=view.trader_filter), …)
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

import streamlit as st
from sqlalchemy.engine import Engine

from analytics.events import compute_data_span
from analytics.filters import compute_filter_options
from components import filters, frame
from components.errors import render_error
from components.filters import View
from connectors.errors import TraderLensError
from server import engine as runtime

R = TypeVar("R")
TTL = "10m"
MAX_ENTRIES = 32


def open_engine() -> Engine:
    """The app's engine, or one clear error on the page and ``st.stop()`` when the database cannot open."""
    try:
        return runtime.get_engine()
    except TraderLensError as exc:
        render_error(exc)
        st.stop()


@overload
def loader(compute: Callable[..., R], *, ttl: str = ..., max_entries: int = ...,
           spinner: str | None = ...) -> Callable[..., R]: ...
@overload
def loader(compute: None = None, *, ttl: str = ..., max_entries: int = ...,
           spinner: str | None = ...) -> Callable[[Callable[..., R]], Callable[..., R]]: ...
def loader(compute: Callable[..., R] | None = None, *, ttl: str = TTL, max_entries: int = MAX_ENTRIES,
           spinner: str | None = None) -> Any:
    """``compute(engine, *args, **kwargs)`` as ``load(*args, user=None, **kwargs)``, cached in ``st.cache_data``.

    The entry's key is the database (the URL without its password), ``user`` (the viewer, for reads
    that will depend on a role) and the arguments; the engine is the app's. Use it as a decorator
    (``@page.loader`` or ``@page.loader(spinner=…)``) or as a call on an analytics function.
    """
    if compute is None:
        return functools.partial(loader, ttl=ttl, max_entries=max_entries, spinner=spinner)
    if _importable(compute):
        return _shared_loader(compute, ttl, max_entries, spinner)
    return _new_loader(compute, ttl, max_entries, spinner)


def _importable(compute: Callable[..., Any]) -> bool:
    """Whether ``compute`` is a module's own top-level function (an analytics one), not one a page
    script defines again on every run."""
    module = sys.modules.get(compute.__module__)
    return getattr(module, compute.__qualname__, None) is compute


@functools.cache
def _shared_loader(compute: Callable[..., R], ttl: str, max_entries: int, spinner: str | None) -> Callable[..., R]:
    # Built once per process: st.cache_data reads and hashes the function's source each time it wraps
    # it, 3-4 ms for a 90-line analytics function, which every page rerun would pay again.
    return _new_loader(compute, ttl, max_entries, spinner)


def _new_loader(compute: Callable[..., R], ttl: str, max_entries: int, spinner: str | None) -> Callable[..., R]:
    # st.cache_data names a function's cache by its module, qualified name and source; wraps() gives
    # the inner function compute's (inspect.getsource follows __wrapped__), so each computation keeps
    # its own cache instead of every loader sharing the one of this inner function.
    @functools.wraps(compute)
    def cached(*, _engine: Engine, database: str, user: str | None, args: tuple, kwargs: dict) -> R:
        return compute(_engine, *args, **kwargs)

    # Called by keyword only: Streamlit names positional arguments from the signature, which
    # wraps() made compute's.
    cached_compute = st.cache_data(cached, ttl=ttl, max_entries=max_entries, show_spinner=spinner or False)

    @functools.wraps(compute)
    def load(*args: Any, user: str | None = None, **kwargs: Any) -> R:
        engine, database = runtime.open_database()
        return cached_compute(_engine=engine, database=database, user=user, args=args, kwargs=kwargs)

    # A page that has just written (a segment saved) drops the entries its write made stale.
    load.clear = cached_compute.clear  # type: ignore[attr-defined]
    return load


load_data_span = loader(compute_data_span, ttl="5m", max_entries=8)
# One minute: the options carry each saved segment's last refresh, which stamps the trader filter, so
# cached results follow a segment's refresh within a minute.
load_filter_options = loader(compute_filter_options, ttl="1m", max_entries=8)


def header(title: str, caption: str | Callable[[View], str] | None = None, *, needs_data: bool = True) -> View:
    """The top every page shares: routed through app.py, the database open, the title and caption.

    ``caption`` may be a function of the sidebar's view. With ``needs_data`` an empty database ends
    the run with how to fill it and a link to the Data page. Returns the sidebar's view.
    """
    frame.route_through_app()
    open_engine()
    view = filters.current_view()
    st.title(title, anchor=False)
    if caption is not None:
        st.caption(caption(view) if callable(caption) else caption)
    if needs_data and load_data_span() is None:
        st.info("No events yet — run `python cli.py seed` for a simulated broker, or import files on the Data page.",
                title="The database is empty", icon=":material/inbox:")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/database:")
        st.stop()
    return view
