"""Widgets bound to the URL's query parameters, with the URL's values checked before the widget sees them.

Every control of every page is bound to a query parameter (``?cohorts.intervals=8``) so a view
can be sent to a colleague. A link can carry anything, though: Streamlit silently drops most
values a widget cannot take, and crashes the whole page on some (``?cohorts.intervals=inf``
raises OverflowError inside the number input). Each function here checks the parameter against
the widget's own options and bounds, drops a bad one from the URL with a notice naming it (shown
at the top of the page, see :func:`open_notices`), and only then creates the widget with
``bind="query-params"``. The first argument is where the widget goes: ``st``, ``st.sidebar`` or a
column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.state import get_session_state

from components.text import escape_markdown

T = TypeVar("T")
NOTICES = "params.notices"  # session state: this run's dropped parameters, shown once at the top
_SLOT = "params.slot"  # session state: the place at the top of the page reserved for them
MAX_TEXT = 200  # characters of a free-text parameter (an event property name)


def _values(key: str) -> list[str]:
    return st.query_params.get_all(key) if key in st.query_params else []


def _replace(key: str, values: list[str] | None) -> None:
    """Set ``?key=`` to ``values`` (None: remove it), for the widget's seeding too.

    A bound widget seeds itself from the URL as it was when the page loaded, which st.query_params
    does not change; and once bound, st.query_params refuses to delete the parameter. Both live in
    Streamlit's QueryParams object (pinned Streamlit version; tests/app/test_query_params.py fails
    if its internals move).
    """
    with get_session_state().query_params() as qp:
        qp.remove_param(key)
        qp._initial_query_params.pop(key, None)
        if values:
            qp[key] = values
            qp._initial_query_params[key] = list(values)


def _reject(key: str, values: list[str], why: str, *, keep: list[str] | None = None) -> None:
    """Drop ``key`` from the URL (or keep only ``keep``) and remember a notice naming the ignored value."""
    _replace(key, keep)
    shown = ", ".join(repr(v[:40] + ("…" if len(v) > 40 else "")) for v in values[:3])
    st.session_state.setdefault(NOTICES, []).append(f"?{key}= {shown}: {why}")
    _show_notices()


def _check(key: str, test: Callable[[list[str]], str | None]) -> None:
    """Drop ``key`` from the URL when ``test`` (which gets its values) returns a reason."""
    values = _values(key)
    if values:
        why = test(values)
        if why is not None:
            _reject(key, values, why)


def _one_of(labels: Sequence[str], *, many: bool = False) -> Callable[[list[str]], str | None]:
    allowed = set(labels)

    def test(values: list[str]) -> str | None:
        if not many and len(values) > 1:
            return "one value expected"
        unknown = [v for v in values if v not in allowed]
        return f"not one of the choices ({len(unknown)} unknown)" if unknown else None

    return test


def selectbox(where: Any, label: str, options: Sequence[T], *, key: str, format_func: Callable[[T], Any] = str,
              **kwargs: Any) -> T:
    """``where.selectbox`` bound to ``?key=``; the URL holds the option's label (``format_func``)."""
    _check(key, _one_of([str(format_func(o)) for o in options]))
    return where.selectbox(label, options, key=key, format_func=format_func, bind="query-params", **kwargs)


def segmented_control(where: Any, label: str, options: Sequence[T], *, key: str,
                      format_func: Callable[[T], Any] = str, **kwargs: Any) -> T:
    """``where.segmented_control`` bound to ``?key=`` (single selection)."""
    _check(key, _one_of([str(format_func(o)) for o in options]))
    return where.segmented_control(label, options, key=key, format_func=format_func, bind="query-params",
                                   **kwargs)


def radio(where: Any, label: str, options: Sequence[T], *, key: str, format_func: Callable[[T], Any] = str,
          **kwargs: Any) -> T:
    """``where.radio`` bound to ``?key=``."""
    _check(key, _one_of([str(format_func(o)) for o in options]))
    return where.radio(label, options, key=key, format_func=format_func, bind="query-params", **kwargs)


def multiselect(where: Any, label: str, options: Sequence[T], *, key: str, format_func: Callable[[T], Any] = str,
                max_selections: int | None = None, aliases: Mapping[str, str] | None = None,
                **kwargs: Any) -> list[T]:
    """``where.multiselect`` bound to ``?key=a&key=b``; unknown values are dropped, the known ones kept.

    ``aliases`` maps other spellings a link may carry to labels (a country's ISO code, as links said before
    the filter showed names, to its name); they are rewritten in the URL."""
    values = _values(key)
    if aliases and any(v in aliases for v in values):
        values = list(dict.fromkeys(aliases.get(v, v) for v in values))
        _replace(key, values)
    labels = {str(format_func(o)) for o in options}
    known = [v for v in values if v in labels]
    if len(known) < len(values):
        _reject(key, [v for v in values if v not in labels], "not among the choices", keep=known)
    if max_selections is not None and len(known) > max_selections:
        _reject(key, known, f"at most {max_selections} may be chosen")
    return where.multiselect(label, options, key=key, format_func=format_func, bind="query-params",
                             max_selections=max_selections, **kwargs)


def number_input(where: Any, label: str, *, key: str, min_value: int | float, max_value: int | float,
                 value: int | float, **kwargs: Any) -> int | float:
    """``where.number_input`` bound to ``?key=``; the URL's number must be finite and within the bounds
    (and whole when the widget is), else it is dropped rather than clamped or crashing the page."""
    whole = all(isinstance(v, int) for v in (min_value, max_value, value))

    def test(values: list[str]) -> str | None:
        if len(values) > 1:
            return "one value expected"
        try:
            number = float(values[0])
        except ValueError:
            return "not a number"
        if not math.isfinite(number):
            return "not a finite number"
        if whole and not number.is_integer():
            return "not a whole number"
        if not min_value <= number <= max_value:
            return f"outside {min_value}–{max_value}"
        return None

    _check(key, test)
    return where.number_input(label, min_value=min_value, max_value=max_value, value=value, key=key,
                              bind="query-params", **kwargs)


def toggle(where: Any, label: str, *, key: str, **kwargs: Any) -> bool:
    """``where.toggle`` bound to ``?key=true|false``."""
    _check(key, lambda vs: None if len(vs) == 1 and vs[0].lower() in {"true", "false"} else "not true or false")
    return where.toggle(label, key=key, bind="query-params", **kwargs)


def date_input(where: Any, label: str, *, key: str, value: date, min_value: date, max_value: date,
               **kwargs: Any) -> date:
    """``where.date_input`` (one day) bound to ``?key=YYYY-MM-DD``, within the bounds."""

    def test(values: list[str]) -> str | None:
        try:
            # Streamlit's date widget reads YYYY-MM-DD only; date.fromisoformat would also take
            # 20261001 and 2026-W40-1, which the widget then silently replaces with its default.
            day = datetime.strptime(values[0], "%Y-%m-%d").date() if len(values) == 1 else None
        except ValueError:
            day = None
        if day is None:
            return "not a date (YYYY-MM-DD)"
        if not min_value <= day <= max_value:
            return f"outside the data ({min_value:%d %b %Y} – {max_value:%d %b %Y})"
        return None

    _check(key, test)
    return where.date_input(label, value=value, min_value=min_value, max_value=max_value, key=key,
                            bind="query-params", **kwargs)


def text_input(where: Any, label: str, *, key: str, max_chars: int = MAX_TEXT, **kwargs: Any) -> str:
    """``where.text_input`` bound to ``?key=``; text longer than ``max_chars`` or with control characters
    is dropped."""

    def test(values: list[str]) -> str | None:
        if len(values) > 1:
            return "one value expected"
        if len(values[0]) > max_chars:
            return f"longer than {max_chars} characters"
        if any(ord(c) < 32 or ord(c) == 127 for c in values[0]):
            return "contains control characters"
        return None

    _check(key, test)
    return where.text_input(label, key=key, max_chars=max_chars, bind="query-params", **kwargs)


def open_notices(where: Any) -> None:
    """Reserve the place (in ``where``, at the top of the page) where this run's notices will show.

    Notices are drawn as soon as a widget drops a parameter, not at the end of the run: a page that
    calls st.stop() (nothing to show yet, a refused funnel) must still say which link settings it
    ignored, and after st.stop() nothing more can be drawn.
    """
    st.session_state[_SLOT] = where.empty()
    st.session_state[NOTICES] = []


def _show_notices() -> None:
    """Draw this run's notices as one warning: in the reserved place, or here when there is none (a
    page run on its own, or a fragment's rerun, which cannot draw outside itself)."""
    ctx = get_script_run_ctx()
    slot = st.session_state.get(_SLOT)
    where = st.empty() if slot is None or (ctx is not None and ctx.fragment_ids_this_run) else slot
    notices = st.session_state.get(NOTICES, [])
    where.warning("  \n".join(escape_markdown(n) for n in notices), title="Some of the link's settings were "
                  "ignored", icon=":material/link_off:")
