"""Until the Data page takes the page seam: its names for the engine, which lives in server/engine.py."""

from __future__ import annotations

from components.page import open_engine as require_engine
from server.engine import get_engine

__all__ = ["get_engine", "require_engine"]
