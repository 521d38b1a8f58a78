"""The server's start-up warm-up (server/warmup.py) against the real server of the browser tests.

The fixtures already wait for the warm-up line of every server they start (a failed warm-up fails
them); this checks what a warm-up run reports and that it refuses a page the app does not have.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from server.warmup import WARM_PAGES, WarmupFailed, warm_pages

pytestmark = pytest.mark.e2e


def in_thread(*args):
    """warm_pages on a thread of its own, as the server runs it: this test thread may hold the
    sync Playwright fixtures' event loop, where asyncio.run() is refused."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(warm_pages, *args).result()


def test_a_warm_up_runs_every_analytics_page_and_refuses_an_unknown_one(demo_app_url):
    seconds = in_thread(demo_app_url)
    assert list(seconds) == list(WARM_PAGES)
    assert all(0 < s < 60 for s in seconds.values())
    with pytest.raises(WarmupFailed, match="no_such_page: no such page"):
        in_thread(demo_app_url, ("no_such_page",))
