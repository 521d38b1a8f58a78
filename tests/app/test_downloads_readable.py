"""Every CSV download of every page is written for reading (docs/semantics.md, "Downloads"): named columns
(none called ``value``), whole numbers without ".0", fractions to at most 4 decimals and other decimals
to at most 2. In-process with AppTest on a small simulated broker."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest

from connectors.simulator import SimulationConfig

PAGES = ["pages/overview.py", "pages/cohorts.py", "pages/funnels.py", "pages/lifecycle.py", "pages/data.py"]
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@pytest.fixture
def db_url(use_broker, seeded_broker) -> str:
    return use_broker(seeded_broker(SimulationConfig(traders=400, days=240, seed=5, end=date(2026, 11, 18))))


def _problems(name: str, text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    found = [f"{name}: a column named 'value'"] if "value" in header else []
    for row in body:
        for column, cell in zip(header, row, strict=True):
            if not NUMBER.match(cell) or "." not in cell:
                continue
            decimals = len(cell.split(".")[1])
            if cell.endswith(".0") or decimals > 4 or (decimals > 2 and abs(float(cell)) > 1):
                found.append(f"{name}: {column} = {cell}")
    return found


@pytest.mark.parametrize("page", PAGES)
def test_every_download_is_written_for_reading(db_url, open_page, downloaded, page):
    at = open_page(page)
    keys = [button.proto.id.rsplit("-", 1)[1] for button in at.get("download_button")]
    assert keys, f"{page} offers no download"

    problems = [p for key in keys for p in _problems(key, downloaded(at, key))]

    assert not problems, problems[:10]
