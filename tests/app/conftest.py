"""Shared fixtures of the AppTest suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from connectors import database


@pytest.fixture(autouse=True)
def _fresh_streamlit_state() -> Iterator[None]:
    """Streamlit caches and our engines are process-wide; no test may see another's."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    database.dispose_engines()


@pytest.fixture
def downloaded(monkeypatch) -> Callable[[AppTest, str], str]:
    """``downloaded(at, key)``: the text the download button keyed ``key`` delivers when clicked.

    Our buttons build their file on the click (a deferred callable, registered with the run's media
    file manager, which AppTest does not expose); the managers are recorded here and the file is built
    through the same call the server makes for a browser's click.
    """
    managers: list[MediaFileManager] = []
    register = MediaFileManager.add_deferred

    def recording(self: MediaFileManager, *args, **kwargs) -> str:
        if self not in managers:
            managers.append(self)
        return register(self, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)

    def fetch(at: AppTest, key: str) -> str:
        file_id = at.get_by_key(key).proto.deferred_file_id
        assert file_id, f"{key} has no file built on click"
        manager = next(m for m in reversed(managers) if file_id in m._deferred_callables)
        url = manager.execute_deferred(file_id)
        return manager._storage.get_file(url.rsplit("/", 1)[-1]).content.decode("utf-8")

    return fetch
