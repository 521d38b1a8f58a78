"""Values from the data shown as literal text inside Streamlit elements that render Markdown.

st.markdown, st.caption, alert bodies and titles, metric labels and help, widget labels and the options
of radio, segmented_control and pills all render GitHub-flavoured Markdown with Streamlit's extensions.
An event named ``![p](http://host/p.png)`` would make every viewer's browser fetch an outside image and
``[click](http://host)`` would become a live link; event names, ids and property values come from outside
the broker, so every one of them goes through :func:`escape_markdown` on its way into such an element.
Plain-text places (dataframes, Altair charts, selectbox and multiselect options) take the raw value.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark and then always reads as
# itself: no emphasis, link, image, ``<autolink>``, HTML tag or entity, heading, list, table, LaTeX
# (``$``) or Streamlit directive (``:red[…]``).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Streamlit's renderer also rewrites text after parsing, where the escapes are already gone: it links
# ``http://…``, ``www.…`` and ``name@host.tld``, turns ``:material_x:`` and ``:streamlit:`` into icons (and
# ``:smile:`` into an emoji, should another part of the same body load that plugin) and whitespace-delimited
# ``->``, ``--``, ``<=`` … into arrows and dashes. An invisible word joiner (U+2060) inside each such
# sequence keeps it as typed. Shortcodes start with a letter, so times such as 14:05:00 are left alone.
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(https?:(?=//)|www(?=\.)|@(?=[-\w]+\.))")
_SHORTCODE = re.compile(r":(?=[A-Za-z][\w+-]*:)")
_TYPOGRAPHY = re.compile(r"(?<!\S)(<->|->|<-|--|>=|<=|~=)(?!\S)")


def escape_markdown(value: object) -> str:
    """``value`` as Markdown that renders exactly its text, on one line.

    Line breaks and runs of whitespace become single spaces (a browser shows them so anyway), which also
    keeps a value from starting a new block (a heading, list or code block).
    """
    text = " ".join(str(value).split())
    text = _AUTOLINK.sub(r"\1" + WORD_JOINER, text)
    text = _SHORTCODE.sub(":" + WORD_JOINER, text)
    text = _TYPOGRAPHY.sub(lambda m: m[0][0] + WORD_JOINER + m[0][1:], text)
    return _PUNCTUATION.sub(r"\\\1", text)
