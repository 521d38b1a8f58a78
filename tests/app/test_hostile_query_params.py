"""Property-based: hostile values in every bound query parameter of every page.

Hypothesis draws a page and a link carrying some of its parameters (its own and the sidebar's), each
set to hostile text (control characters, NUL, kilobytes, SQL, Markdown and HTML), hostile numbers
(inf, nan, 1e309, huge integers), hostile dates (0001-01-01, 9999-12-31, malformed), near misses of
a valid value, a valid value, or several values for one key. Whatever the link says:

- the run raises nothing and the page's title is shown;
- a parameter whose widget is on the page is either applied (the widget shows that value) or named
  by the "Some of the link's settings were ignored" notice: nothing is dropped silently;
- no Markdown-rendered text carries a link, an image or an HTML tag unescaped;
- the database holds the same rows (row count and a content hash per table) after every run;
- the test process's memory stays within a fixed bound, per run and over the whole test.

The parameters are enumerated from the source (every ``params.<widget>(..., key="...")`` call in the
pages and the sidebar filters) and the pages from app.py, so a new control is covered once it exists.
"""

from __future__ import annotations

import ast
import re
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from components import labels
from connectors import database
from connectors.simulator import SimulationConfig

ROOT = Path(__file__).resolve().parents[2]
NOTICE = "Some of the link's settings were ignored"
MAX_EXAMPLES = 60
PER_RUN_MB = 400  # peak RSS above the RSS before one page run (measured: at most 16 MB over 700 runs)
TOTAL_MB = 400  # peak RSS growth over the whole property run (measured: 38-44 MB here, 77 MB over 400 runs)


# --- what there is to test, read from the source ------------------------------------------------

def _pages() -> dict[str, str]:
    """app.py's pages: script path -> title (every ``PageSpec("pages/x.py", title=...)``, or
    ``st.Page(...)``)."""
    pages = {}
    for node in ast.walk(ast.parse((ROOT / "app.py").read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name in ("Page", "PageSpec") and node.args:
            title = next(kw.value.value for kw in node.keywords if kw.arg == "title")
            pages[node.args[0].value] = title
    return pages


def _bound_keys(path: Path) -> list[str]:
    """The ``key=`` of every ``params.<widget>(...)`` call in ``path``: the parameters bound to its widgets."""
    keys = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "params"):
            keys += [kw.value.value for kw in node.keywords if kw.arg == "key" and isinstance(kw.value, ast.Constant)]
    return keys


def _studio_keys() -> list[str]:
    """The clustering studio's parameters (components/cluster_studio.py binds ``key=f"{key}.<name>"``, under
    the key the Segments page gives it, "segments.studio"; its Clusters tab is the page's default)."""
    keys = []
    for node in ast.walk(ast.parse((ROOT / "components" / "cluster_studio.py").read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "params"):
            for kw in node.keywords:
                if kw.arg == "key" and isinstance(kw.value, ast.JoinedStr) and isinstance(kw.value.values[-1],
                                                                                         ast.Constant):
                    keys.append("segments.studio" + kw.value.values[-1].value)
    return keys


PAGES = _pages()
GLOBAL_KEYS = _bound_keys(ROOT / "components" / "filters.py")
PAGE_KEYS = {page: _bound_keys(ROOT / page) + (_studio_keys() if page == "pages/segments.py" else [])
             for page in PAGES}
# Widgets shown only when another parameter has a given value: (that parameter, the value in the URL).
GATES = {"from": ("period", "Custom"), "to": ("period", "Custom"),
         "funnels.breakdown": ("funnels.breakdown_kind", "Trader attribute"),
         "funnels.property": ("funnels.breakdown_kind", "Event property"),
         "segments.archived": ("segments.tab", "Saved segments"),
         "trader360.window": ("trader", "SIM-0000001")}


@dataclass(frozen=True)
class Spec:
    """A bound widget as the catalog run found it: its kind and what it accepts."""

    kind: str  # the AppTest element class: Selectbox, Radio, ButtonGroup, Multiselect, NumberInput, ...
    options: tuple[str, ...] = ()
    low: float | date | None = None
    high: float | date | None = None


# --- the database ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeded_file(seeded_broker) -> Path:
    """The simulated broker (300 traders over 90 days ending 1 Nov 2026); tests open copies."""
    return seeded_broker(SimulationConfig(traders=300, days=90, seed=3, end=date(2026, 11, 1)))


def fingerprint(engine: sa.Engine) -> dict[str, tuple[int, int | None]]:
    """Row count and an order-independent hash of the rows, per table."""
    tables = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        return {t: tuple(conn.execute(sa.text(f'SELECT count(*), bit_xor(hash(t)) FROM "{t}" t')).one())
                for t in tables}


# --- running a page -------------------------------------------------------------------------------


def widgets(at: AppTest) -> dict[str, Element]:
    return {node.key: node for node in at._tree if isinstance(node, Element) and getattr(node, "key", None)}


def notice(at: AppTest) -> str:
    """The notice as a reader sees it (Markdown escapes and word joiners removed); "" when there is none."""
    shown = [w.value for w in at.warning if w.proto.title == NOTICE]
    assert len(shown) <= 1, shown
    return shown[0].replace("\\", "").replace("\u2060", "") if shown else ""


def shown_value(widget: Element) -> list[str] | float | bool | date | str | None:
    """What the widget shows, in the form its URL parameter takes (option labels as displayed)."""
    kind = type(widget).__name__
    if kind in ("Selectbox", "Radio"):
        return None if widget.index is None else widget.options[widget.index]
    if kind == "ButtonGroup":
        return list(widget.formatted_values)
    if kind == "Multiselect":
        return list(widget.values)
    return widget.value


LINK_ALIASES = {"country": labels.country_name, "channel": labels.channel_name}


def applied(values: list[str], widget: Element) -> bool:
    """Whether the widget shows what the URL's ``values`` ask for."""
    kind, shown = type(widget).__name__, shown_value(widget)
    if kind == "Multiselect":
        # A link may name a country by its ISO code and a channel by its code ("DE", "affiliate"): the
        # widget shows the name.
        alias = LINK_ALIASES.get(widget.key, str)
        return {v if v in shown else alias(v) for v in values if v != ""} == set(shown)
    if len(values) != 1:
        return False
    value = values[0]
    if kind in ("Selectbox", "Radio"):
        return value == shown
    if kind == "ButtonGroup":
        return [value] == shown
    if kind == "NumberInput":
        try:
            return float(value) == shown
        except ValueError:
            return False
    if kind == "Toggle":
        return value.lower() == str(shown).lower()
    if kind == "DateInput":
        try:
            return date.fromisoformat(value) == shown
        except ValueError:
            return False
    return value == shown  # TextInput


# Markdown-rendered fields of element protos (alert bodies and titles, captions, labels, help, the options of
# radio and segmented_control); dataframes, charts, code and selectbox/multiselect options are plain text.
MARKDOWN_FIELDS = {"body", "label", "help", "title", "content", "placeholder", "caption"}
UNESCAPED = [
    re.compile(r"(?<!\\)\]\(\s*<?\s*(?:https?:|//|javascript:|data:)", re.IGNORECASE),  # [text](url), ![img](url)
    re.compile(r"(?<!\\)<\s*/?\s*(?:script|img|iframe|a|svg|style)\b", re.IGNORECASE),  # an HTML tag
    re.compile(r"https?://127\.0\.0\.1"),  # a bare URL, which the renderer would turn into a link
]


def _strings(message, names: set[str]) -> list[str]:
    found = []
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        for item in items:
            if field.type == field.TYPE_MESSAGE:
                found += _strings(item, names)
            elif field.type == field.TYPE_STRING and field.name in names:
                found.append(item)
    return found


def markdown_texts(at: AppTest) -> tuple[list[str], list[str]]:
    """The Markdown-rendered texts of the run, and the bodies of the app's own HTML (st.html, unsafe_allow_html)."""
    texts, html = [], []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        if type(node).__name__ == "Html" or getattr(proto, "allow_html", False):  # st.html, unsafe_allow_html
            html.append(proto.body)
            continue
        names = MARKDOWN_FIELDS | ({"options"} if type(node).__name__ == "Radio" else set())
        texts += _strings(proto, names)
    return texts, html


# --- memory --------------------------------------------------------------------------------------


# --- the catalog: every bound widget, found by opening each page (and the gated variants) ------------

@pytest.fixture(scope="module")
def catalog(seeded_file, tmp_path_factory, open_linked) -> dict[str, Spec]:
    copy = tmp_path_factory.mktemp("catalog") / "app.duckdb"
    shutil.copyfile(seeded_file, copy)
    runs = [(page, {}) for page in PAGES]
    gated_pages = {"from": "pages/overview.py", "to": "pages/overview.py"}
    for key, (gate, value) in GATES.items():
        page = gated_pages.get(key) or next(p for p, keys in PAGE_KEYS.items() if key in keys)
        runs.append((page, {gate: value}))
    found: dict[str, Spec] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADERLENS_DB_URL", f"duckdb:///{copy}")
        for page, query in runs:
            at = open_linked(page, query)
            assert not at.exception, (page, query, [e.value for e in at.exception])
            for key, widget in widgets(at).items():
                kind = type(widget).__name__
                if kind in ("NumberInput", "DateInput"):
                    found[key] = Spec(kind, low=widget.min, high=widget.max)
                else:
                    found[key] = Spec(kind, tuple(getattr(widget, "options", ())))
        database.dispose_engines()
    return found


def test_every_bound_parameter_is_reached_by_the_catalog(catalog):
    """The property below draws from this catalog; a control shown under a condition not in GATES fails here."""
    bound = set(GLOBAL_KEYS).union(*PAGE_KEYS.values())
    assert len(bound) >= 40 and set(GLOBAL_KEYS) >= {"period", "from", "to", "country", "test"}
    assert bound <= set(catalog), sorted(bound - set(catalog))


# --- values ---------------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "", " ", "\x00", "a\x00b", "\t", "\r\n", "\x1b[31m", "\x7f", "\u200b", "\u202e", "\ufeff", "😀", "ß", "İ",
    "' OR 1=1 --", "'; DROP TABLE traders; --", '" OR ""="', "%' --", "\\", "%00", "%", "&", "=", "#", "?",
    "![p](http://127.0.0.1:9/p.png)", "[click](http://127.0.0.1:9/x)", "<script>alert(1)</script>",
    "<img src=http://127.0.0.1:9/i.png>", "http://127.0.0.1:9/raw", "**bold** :red[red] $x$", "# heading",
    "javascript:alert(1)", "{{7*7}}", "${jndi:ldap://127.0.0.1:9/a}", "%s%s%n", "../../etc/passwd", "None",
    "null", "undefined", "[]", "{}", "true ", "TRUE",
]
SPECIAL_NUMBERS = [
    "inf", "-inf", "Infinity", "nan", "NaN", "-nan", "1e309", "-1e309", "1e-320", "-0", "0", "-1", "+9", " 9",
    "9 ", "9.", ".5", "8.0", "1e1", "0x10", "1_000", "٣", "１２", "9" * 400, "-" + "9" * 30, "2.5",
]
SPECIAL_DATES = [
    "0001-01-01", "9999-12-31", "0000-00-00", "2026-02-30", "2026-13-01", "2026-10-1", "20261001", "2026-W40-1",
    "2026-10-01T00:00:00", "2026-10-01 ", "-2026-10-01", "+2026-10-01", "1970-01-01", "2026-10-32", "today",
]


def hostile() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL_TEXT + SPECIAL_NUMBERS + SPECIAL_DATES),
        st.text(max_size=40),  # any Unicode but surrogates: control characters and NUL included
        st.text(st.characters(codec="ascii"), min_size=201, max_size=4000),  # a few KB
        st.integers(-(10**40), 10**40).map(str),
        st.floats().map(repr),  # nan, inf, -0.0, 5e-324 ...
        st.dates().map(date.isoformat),
    )


def valid(spec: Spec) -> st.SearchStrategy[str | list[str]]:
    if spec.kind == "Multiselect":
        # A picker with nothing to offer (the Segment filter before any segment is saved) takes
        # only the hostile values.
        return st.lists(st.sampled_from(spec.options), min_size=1, max_size=3) if spec.options else st.nothing()
    if spec.options:
        return st.sampled_from(spec.options)
    if spec.kind == "NumberInput":
        return st.integers(int(spec.low), int(spec.high)).map(str)
    if spec.kind == "DateInput":
        return st.dates(spec.low, spec.high).map(date.isoformat)
    if spec.kind == "Toggle":
        return st.sampled_from(["true", "false"])
    return st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\x7f"), max_size=30)


def near_miss(spec: Spec) -> st.SearchStrategy[str]:
    """A valid value changed a little: case, spaces, a line break, a neighbour out of range."""
    base = valid(spec).map(lambda v: v[0] if isinstance(v, list) else v)
    tweaked = st.tuples(base, st.sampled_from(["upper", "lower", "lead", "trail", "newline", "nul"])).map(
        lambda p: {"upper": p[0].upper(), "lower": p[0].lower(), "lead": " " + p[0], "trail": p[0] + " ",
                   "newline": p[0] + "\n", "nul": p[0] + "\x00"}[p[1]])
    if spec.kind == "NumberInput":
        low, high = int(spec.low), int(spec.high)
        return st.one_of(tweaked, st.sampled_from([str(low - 1), str(high + 1), f"{low}.5"]))
    return tweaked


def value_for(spec: Spec) -> st.SearchStrategy[str | list[str]]:
    one = st.one_of(hostile(), near_miss(spec), valid(spec).filter(lambda v: isinstance(v, str)))
    return st.one_of(hostile(), near_miss(spec), valid(spec), st.lists(one, min_size=2, max_size=4))


@st.composite
def links(draw, catalog: dict[str, Spec]) -> tuple[str, dict[str, str | list[str]]]:
    """A page and a link to it carrying 1..6 of its parameters (its own and the sidebar's), mostly hostile."""
    page = draw(st.sampled_from(sorted(PAGES)))
    keys = draw(st.lists(st.sampled_from(PAGE_KEYS[page] + GLOBAL_KEYS), min_size=1, max_size=6, unique=True))
    query: dict[str, str | list[str]] = {key: draw(value_for(catalog[key])) for key in keys}
    for key in keys:  # a control shown only under a condition: usually meet it, so the value gets checked
        if key in GATES and GATES[key][0] not in query and draw(st.integers(0, 3)) > 0:
            query[GATES[key][0]] = GATES[key][1]
    return page, query


# --- the property ---------------------------------------------------------------------------------

def test_no_link_breaks_a_page_drops_a_setting_silently_or_changes_the_data(catalog, seeded_file, tmp_path,
                                                                            monkeypatch, open_linked, process_memory):
    copy = tmp_path / "app.duckdb"
    shutil.copyfile(seeded_file, copy)
    url = f"duckdb:///{copy}"
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    before = fingerprint(database.get_engine(url))
    assert before["traders"][0] == 300
    peaks = process_memory.reset_peak()
    start_rss = process_memory.mb("VmRSS")
    worst = {"per_run": 0, "runs": 0, "growth": 0}
    started = time.perf_counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(link=links(catalog))
    @example(link=("pages/cohorts.py", {"cohorts.intervals": "inf", "cohorts.threshold": "1e309", "test": "nan"}))
    @example(link=("pages/funnels.py", {"funnels.breakdown_kind": "Event property",
                                        "funnels.property": "![p](http://127.0.0.1:9/p.png)"}))
    @example(link=("pages/lifecycle.py", {"period": "Custom", "from": "0001-01-01", "to": "9999-12-31"}))
    @example(link=("pages/data.py", {"country": ["DE", "' OR 1=1 --", "<script>alert(1)</script>"]}))
    @example(link=("pages/overview.py", {"period": "Custom", "from": "20261001"}))  # ISO basic format
    @example(link=("pages/funnels.py", {"funnels.steps": "Registered", "funnels.order": "zz"}))  # page stops early
    def check(link):
        page, query = link
        rss = process_memory.mb("VmRSS")
        process_memory.reset_peak()
        at = open_linked(page, query)
        high = process_memory.mb("VmHWM") if peaks else process_memory.mb("VmRSS")
        used = high - rss
        worst["per_run"], worst["runs"] = max(worst["per_run"], used), worst["runs"] + 1
        worst["growth"] = max(worst["growth"], high - start_rss)
        assert not at.exception, [e.value for e in at.exception]
        assert [t.value for t in at.title][:1] == [PAGES[page]]
        named = notice(at)
        shown = widgets(at)
        for key, value in query.items():
            values = value if isinstance(value, list) else [value]
            if key in shown and f"?{key}=" not in named:
                assert applied(values, shown[key]), (
                    f"?{key}={values!r} was neither applied nor named: the widget shows {shown_value(shown[key])!r}")
        texts, html = markdown_texts(at)
        for text in texts:
            for pattern in UNESCAPED:
                assert not pattern.search(text), f"unescaped in Markdown: {text!r}"
        markup = {v for value in query.values() for v in (value if isinstance(value, list) else [value])
                  if len(v) > 3 and re.search(r"[<>\[\]()]|://", v)}
        assert not [(v, body) for body in html for v in markup if v in body], "a link's value in the app's own HTML"
        assert fingerprint(database.get_engine(url)) == before
        assert used < PER_RUN_MB, f"one run took {used} MB"

    check()
    growth = max(worst["growth"], process_memory.mb("VmRSS") - start_rss)
    print(f"\n{worst['runs']} runs in {time.perf_counter() - started:.0f} s; peak RSS growth {growth} MB over the "
          f"run, at most {worst['per_run']} MB in one page run")
    assert growth < TOTAL_MB


def test_the_markdown_check_would_see_an_unescaped_link():
    """The property's Markdown check is not vacuous: a raw image, tag or URL matches, the escaped forms do not."""
    from components.text import escape_markdown

    for raw in ("![p](http://127.0.0.1:9/p.png)", "<script>x</script>", "see http://127.0.0.1:9/raw"):
        assert any(p.search(raw) for p in UNESCAPED), raw
        assert not any(p.search(escape_markdown(raw)) for p in UNESCAPED), raw
