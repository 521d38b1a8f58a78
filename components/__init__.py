"""Rendering only: functions that take data (never fetch it) and draw it with Streamlit."""
