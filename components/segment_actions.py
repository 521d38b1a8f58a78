"""The Segments page's writes (save, new version, refresh now, archive), run from button callbacks
through the app's writer engine; each leaves one message for the next run of the page and makes
the page and the sidebar show the change at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from analytics import segments
from components import page
from components.errors import render_error
from components.text import escape_markdown
from connectors.errors import TraderLensError
from server import engine as runtime

FLASH = "segments.flash"  # session state: (kind, message) of the last write, shown once


def _changed() -> None:
    """Drop cached results that show segments (lists, members, the sidebar's segment picker)."""
    clear = getattr(page.load_filter_options, "clear", None)
    if clear is not None:
        clear()
        for loader in _LOADERS:
            loader.clear()
    else:  # components.page loaders without their own clear: every cached result goes
        st.cache_data.clear()


# Loaders of the Segments page whose results a write changes (registered by the page).
_LOADERS: list[Any] = []


def register_loaders(*loaders: Any) -> None:
    """Loaders to clear after a write (those with a ``clear``)."""
    for loader in loaders:
        if hasattr(loader, "clear") and loader not in _LOADERS:
            _LOADERS.append(loader)


def run_action(action: Callable[[], str], *, changed: Callable[[], None], flash: str) -> None:
    """Run a write from a button callback: its message (or its TraderLensError) kept under ``flash``
    for :func:`render_flash`, and ``changed`` (dropping cached results) called after a success."""
    try:
        message = action()
    except TraderLensError as exc:
        st.session_state[flash] = ("error", exc)
        return
    changed()
    st.session_state[flash] = ("success", message)


def _run(action: Callable[[], str]) -> None:
    run_action(action, changed=_changed, flash=FLASH)


def render_flash(key: str = FLASH) -> None:
    """The last write's message kept under ``key`` in session state ((kind, message)), once."""
    found = st.session_state.pop(key, None)
    if found is None:
        return
    kind, message = found
    if kind == "error":
        render_error(message)
    else:
        st.success(message, icon=":material/check_circle:")


def _size(segment: segments.Segment) -> int:
    return len(segments.member_ids(runtime.get_writer_engine(), segment.segment_id))


def save_new(kind: str, name: str, definition: Mapping, description: str = "") -> None:
    """Create a segment of ``kind`` and compute its members."""
    def action() -> str:
        created = segments.create_segment(runtime.get_writer_engine(), name=name, kind=kind,
                                          definition=definition, description=description)
        return f"Saved “{escape_markdown(created.name)}” with {_size(created):,} members."
    _run(action)


def save_version(segment_id: int, definition: Mapping, description: str | None = None) -> None:
    """Save ``definition`` as the segment's next version and recompute its members."""
    def action() -> str:
        before = segments.get_segment(runtime.get_writer_engine(), segment_id)
        after = segments.update_segment(runtime.get_writer_engine(), segment_id, definition=definition,
                                        description=description)
        if after.version == before.version and after.description == before.description:
            return f"“{escape_markdown(after.name)}” already has this definition: nothing changed."
        return f"Saved “{escape_markdown(after.name)}” as version {after.version}: {_size(after):,} members."
    _run(action)


def refresh_now(segment_id: int) -> None:
    """Recompute the segment's members now."""
    def action() -> str:
        result = segments.refresh_segment(runtime.get_writer_engine(), segment_id)
        return (f"Refreshed “{escape_markdown(result.name)}”: {result.size:,} members ({result.entered:,} entered, "
                f"{result.left:,} left) in {result.seconds:.2f} s.")
    _run(action)


def set_archived(segment_id: int, archived: bool) -> None:
    """Archive the segment, or restore it."""
    def action() -> str:
        s = segments.archive_segment(runtime.get_writer_engine(), segment_id, archived=archived)
        name = escape_markdown(s.name)
        return (f"Archived “{name}”: it is kept, no longer refreshed or offered as a filter." if archived
                else f"Restored “{name}”.")
    _run(action)


def materialise_features() -> None:
    """Compute the feature snapshot rules read (the first one, or a fresh one)."""
    def action() -> str:
        from analytics.features import materialise_features as materialise

        done = materialise(runtime.get_writer_engine())
        return f"Feature snapshot as of {done.as_of:%d %b %Y} computed for {done.traders:,} traders."
    _run(action)


# Form callbacks: a form's values are in session state when its submit button's callback runs
# (before the page script), so the write and its message are done whatever the script does next.


def submit_new(kind: str, definition: Mapping | Callable[[], Mapping], *, name_key: str,
               description_key: str | None = None) -> None:
    """Create a segment from a submitted form: its name (and description) from the form's widgets;
    ``definition`` or, when callable, what it returns then (SegmentRejected becomes the message)."""
    state = st.session_state
    try:
        made = definition() if callable(definition) else definition
    except TraderLensError as exc:
        state[FLASH] = ("error", exc)
        return
    save_new(kind, state.get(name_key, ""), made, state.get(description_key, "") if description_key else "")


def submit_rule(rule: Mapping, editing: int | None, *, name_key: str, description_key: str, version_key: str) -> None:
    """Save the rule builder's rule: as the next version of the segment it was loaded from when the
    form asks so, else as a new segment."""
    state = st.session_state
    if editing is not None and state.get(version_key):
        save_version(int(editing), rule, state.get(description_key) or None)
    else:
        save_new("rules", state.get(name_key, ""), rule, state.get(description_key, ""))


def submit_cluster(run_id: int, *, clusters_key: str, name_key: str) -> None:
    """Create a cluster segment from the form: the clusters chosen of run ``run_id``."""
    chosen = [int(c) for c in st.session_state.get(clusters_key) or []]
    save_new("cluster", st.session_state.get(name_key, ""), {"run_id": int(run_id), "clusters": chosen})


def submit_funnel(prefix: str) -> None:
    """Create a funnel-step segment from the form whose widgets are keyed ``<prefix>.steps``,
    ``.step``, ``.window`` (days), ``.days``, ``.status`` ("both" for either) and ``.name``."""
    state = st.session_state

    def definition() -> dict:
        from analytics.funnels import FunnelSpec

        status = state.get(f"{prefix}.status", "dropped")
        spec = FunnelSpec(tuple(state.get(f"{prefix}.steps") or ()),
                          window_s=int(state.get(f"{prefix}.window", 14)) * 86_400)
        return segments.funnel_step_definition(spec, step=int(state.get(f"{prefix}.step", 1)),
                                               status=None if status == "both" else status,
                                               days=int(state.get(f"{prefix}.days", 30)))

    submit_new("funnel_step", definition, name_key=f"{prefix}.name")
