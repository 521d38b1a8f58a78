"""The app's runtime: the database engine the server process holds, and the start-up warm-up.

Below ``components/`` (which renders) and above ``analytics/``: the page seam asks it for the
engine, and ``cli.py serve`` for the warm-up, without importing anything that draws.
"""
