"""No form of TRADERLENS_DB_URL, parseable or not, ever shows its password: not in the CLI's output,
not on any page (error box, sidebar), not in the messages of the database layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from connectors import database
from connectors.errors import DatabaseUnavailable

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "S3cretPW"

# Each is a mistake someone makes in a config file. The port is one nothing listens on, so a URL
# that parses fails fast on connecting.
MALFORMED_URLS = [
    f"postgresql+psycopg2//alice:{PASSWORD}@127.0.0.1:1/db",  # missing colon
    f"postgresql+psycopg2:/alice:{PASSWORD}@127.0.0.1:1/db",  # one slash
    f"postgresql+psycopg2://alice:{PASSWORD}@x@127.0.0.1:1/db",  # unescaped @ in the password
    f"postgresql+psycopg2://alice:p@{PASSWORD}@127.0.0.1:1/db",  # the password's tail after an @
    f"postgresql+psycopg2://alice:{PASSWORD}@127.0.0.1:notaport/db",  # port is not a number
    f"postgresql+psycopg2://alice:{PASSWORD}@[::1/db",  # broken IPv6 literal
    f"postgresql+psycopg2://alice:{PASSWORD}@127.0.0.1:1/db?password={PASSWORD}",
    f"postgresql+psycopg2://127.0.0.1:1/db?sslpassword={PASSWORD}&sslmode=require",
    f"postgresql+psycopg2://:{PASSWORD}@127.0.0.1:1/db",  # password without a user
    f"mysql://alice:{PASSWORD}@127.0.0.1:1/db",  # unsupported backend
    f"alice:{PASSWORD}@127.0.0.1:1/db",  # no scheme at all
    f"  postgresql+psycopg2://alice:{PASSWORD}@127.0.0.1:1/db  ",  # stray spaces
    f"postgresql+psycopg2://alice:{PASSWORD}:extra@127.0.0.1:1/db",  # a colon in the password
    f"{PASSWORD}",  # a password pasted where the URL goes
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_redact_location_and_describe_never_show_the_password(url):
    for shown in (database.redact(url), database.location(url), *database.describe(url)):
        assert PASSWORD not in shown
        assert "p@" not in shown  # nor the head of a password cut at an @


def test_redact_keeps_what_helps_and_says_when_it_cannot_parse():
    assert database.redact("postgresql+psycopg2://alice:pw@db.internal:5432/tl?sslmode=require") == \
        "postgresql+psycopg2://***@db.internal:5432/tl?sslmode=require"
    assert database.redact("duckdb:////srv/data/tl.duckdb") == "duckdb:////srv/data/tl.duckdb"
    assert database.location("postgresql+psycopg2://alice:pw@db.internal:5432/tl") == "db.internal:5432/tl"
    assert database.location("duckdb:////srv/data/tl.duckdb") == "/srv/data/tl.duckdb"
    assert database.redact(f"postgresql+psycopg2//alice:{PASSWORD}@h/db") == database.UNPARSEABLE_URL
    assert database.describe("postgresql+psycopg2://u:p@h:5432/db") == ("PostgreSQL", "h:5432/db")


def test_scrub_removes_an_echoed_dsn_and_password():
    url = f"postgresql+psycopg2://alice:{PASSWORD}@h/db"
    text = database.scrub(f"invalid dsn: {url}; password {PASSWORD}", url)
    assert PASSWORD not in text and "alice" not in text


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_opening_the_database_fails_without_the_password(url):
    with pytest.raises(DatabaseUnavailable) as caught:
        database.get_engine(url)
    assert PASSWORD not in str(caught.value) and PASSWORD not in caught.value.url


@pytest.mark.parametrize("url", MALFORMED_URLS)
@pytest.mark.parametrize("command", [["info"], ["report", "kpis"], ["setup"]])
def test_cli_never_prints_the_password(url, command):
    env = {**os.environ, "TRADERLENS_DB_URL": url}
    env.pop("TRADERLENS_DEBUG", None)
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert PASSWORD not in done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def _everything_shown(at: AppTest) -> str:
    """Every value and property of every element on the page and in the sidebar, as one string."""
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_no_page_shows_the_password(url, monkeypatch):
    monkeypatch.setenv("TRADERLENS_DB_URL", url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    shown = _everything_shown(at)
    assert "Cannot reach the database" in shown or "cannot be parsed" in shown
    assert PASSWORD not in shown
    assert not at.exception
