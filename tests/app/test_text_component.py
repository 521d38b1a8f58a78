"""components.text.escape_markdown: a value from the data as Markdown that renders exactly its text.

What Streamlit's renderer makes of the output is checked in a real browser (tests/e2e); here, the rules."""

from __future__ import annotations

import re
import string

import pytest

from components.text import WORD_JOINER, escape_markdown

PUNCTUATION = re.escape(string.punctuation)
# Every ASCII punctuation character in the output has a backslash before it: CommonMark then reads it as
# itself. (A backslash before a backslash counts, so "\\\\" is one escaped backslash.)
INERT = re.compile(rf"(?:\\[{PUNCTUATION}]|[^{PUNCTUATION}])*")


def unescaped(markdown: str) -> str:
    """The text CommonMark shows for ``markdown`` made only of escapes and plain characters."""
    return re.sub(rf"\\([{PUNCTUATION}])", r"\1", markdown).replace(WORD_JOINER, "")


HOSTILE = [
    "![p](http://127.0.0.1:9/p.png)", "[click](http://127.0.0.1:9/x)", "<img src=x onerror=alert(1)>",
    "<http://evil.example>", "**bold** _it_ ~~del~~ `code`", "# heading", "- item", "1. item", "> quote",
    "| a | b |", ":red[red] :blue-badge[b] :material/home:", "$x^2$ $$y$$", "&amp; &#60;", "[ref]: http://x",
    "back\\slash", "{curly} (paren) ?!;\"'", "a@b.co www.example.com HTTPS://x.example",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_and_html_become_escaped_text(value):
    out = escape_markdown(value)
    assert INERT.fullmatch(out), out
    assert unescaped(out) == value


def test_every_ascii_punctuation_character_is_escaped():
    assert escape_markdown(string.punctuation) == "".join("\\" + c for c in string.punctuation)


def test_letters_digits_and_other_scripts_are_left_alone():
    for value in ["registered", "Deposit page view 2", "Ünïcödé — “quotes” ＝＋", "日本語"]:
        assert escape_markdown(value) == value


def test_line_breaks_and_runs_of_whitespace_become_one_space():
    # A line break could start a heading, list or code block; a browser shows a space anyway.
    assert escape_markdown("a\n# b\r\n\n    c\t d  ") == "a \\# b c d"


@pytest.mark.parametrize("value, kept", [
    ("http://evil.example/x", "http:"), ("HTTPS://evil.example", "HTTPS:"), ("www.evil.example", "www"),
    ("mail me@evil.example", "@"), (":material_home: :streamlit: :smile:", ":"),
    ("a -> b", "-"), ("c <- d", "<"), ("e <-> f", "<"), ("g -- h", "-"), ("i >= j", ">"), ("k <= l", "<"),
    ("m ~= n", "~"),
])
def test_what_streamlit_rewrites_after_parsing_gets_a_word_joiner(value, kept):
    # Links, icons and arrows Streamlit makes from the parsed text, where escapes no longer count.
    out = escape_markdown(value)
    assert kept + WORD_JOINER in re.sub(rf"\\([{PUNCTUATION}])", r"\1", out)
    assert unescaped(out) == value


def test_times_and_plain_text_get_no_word_joiner():
    for value in ["14:05:00", "2024-03-01T14:05:00Z", "a-b", "x->y", "1 - 2", "ratio: 3"]:
        assert WORD_JOINER not in escape_markdown(value), value


def test_anything_is_shown_as_its_str():
    assert escape_markdown(1.5) == "1\\.5"
    assert escape_markdown(None) == "None"
    assert escape_markdown(ValueError("bad [x](y)")) == "bad \\[x\\]\\(y\\)"
