"""A page of every Markdown-rendering element the app uses, each given hostile values through
components.text.escape_markdown (served by tests/e2e/test_hostile_names_e2e.py)."""

from __future__ import annotations

import os

import streamlit as st

from components.text import escape_markdown

# Values that Markdown, HTML, Streamlit's directives or its text rewrites would turn into something else;
# {trap} is the counting server's host.
VALUES = [
    "![p](http://{trap}/p.png)", "[click](http://{trap}/x)", "<img src='http://{trap}/i.png'>",
    "<http://{trap}/angle>", "http://{trap}/auto www.example.com a@b.co", "[ref]: http://{trap}/ref",
    "![a][b]\n\n[b]: http://{trap}/b.png", "[x](javascript:alert(1))", "<script>alert(1)</script>",
    "**bold** _it_ ~~del~~ `code` \\*esc\\*", "# heading", "- item", "1. item", "> quote", "| a | b |",
    ":red[red] :blue-background[bg] :green-badge[badge] :help[tip]",
    ":material/home: :material_home: :streamlit: :smile: :+1:", "$x^2$ $$y$$", "&amp; &lt;b&gt; &#60;",
    "a -> b <- c <-> d -- e >= f <= g ~= h", "line1\nline2\n\n    code", "back\\slash \\\\ \\[",
    "14:05:00 2024-03-01T14:05:00Z", "{curly} (paren) ?!;\"'", "Ünïcödé — “quotes” ＝＋",
]

if __name__ == "__main__":  # streamlit runs the file as __main__; the test imports VALUES
    trap = os.environ["TRAP_HOST"]
    for i, raw in enumerate(VALUES):
        text = escape_markdown(raw.replace("{trap}", trap))
        with st.container(key=f"value{i}"):
            st.markdown(text)
            st.caption(text)
            st.metric(text, "1", help=text)
            st.info(text, title=text)
            st.radio(text, ["option"], format_func=lambda _, text=text: text, key=f"radio{i}")
            st.segmented_control(text, ["option"], format_func=lambda _, text=text: text, key=f"segments{i}")
            st.checkbox(text, key=f"checkbox{i}")
