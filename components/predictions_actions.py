"""The Predictions page's writes: train a model (in the background), promote a candidate, score now.

Each runs through the app's writer engine and leaves one message for the page's next run (shown by
:func:`render_flash`); a TraderLensError becomes that message, never a stack trace. Saving traders as a
segment goes through components/segment_actions.py, as on the Segments page.

Training and promotion are admin actions. Sign-in arrives with issue 14; until then every user may,
and the page says so. :data:`USER` is who the registry and the job table record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analytics.models import jobs, registry, scoring
from analytics.models.dataset import MODEL_FEATURES
from analytics.models.specs import model_spec
from components.segment_actions import render_flash as _render
from components.segment_actions import run_action
from components.text import escape_markdown
from server import engine as runtime

FLASH = "predictions.flash"  # session state: (kind, message) of the last action, shown once
USER = "app"  # who acted, until sign-in (issue 14) names the user

# Loaders whose results an action changes (registered by the page's views).
_LOADERS: list[Any] = []


def register_loaders(*loaders: Any) -> None:
    for loader in loaders:
        if hasattr(loader, "clear") and loader not in _LOADERS:
            _LOADERS.append(loader)


def changed() -> None:
    """Drop the cached runs, scorings and score tables (after a write of this page or a finished job)."""
    for loader in _LOADERS:
        loader.clear()


def _run(action: Callable[[], str]) -> None:
    run_action(action, changed=changed, flash=FLASH)


def render_flash() -> None:
    """The last action's message, once."""
    _render(FLASH)


def train(model: str) -> None:
    """Start training ``model`` in the background (:func:`analytics.models.jobs.start_training`)."""
    def action() -> str:
        job_id = jobs.start_training(runtime.get_writer_engine(), model, by=USER)
        return (f"Training of a new {model_spec(model).title.lower()} model started (job {job_id}). It runs in the "
                "background: you can leave this page; the new model is saved as a candidate for you to compare "
                "and promote.")
    _run(action)


def promote(run_id: int) -> None:
    """Make run ``run_id`` the active model of its kind."""
    def action() -> str:
        run = registry.promote(runtime.get_writer_engine(), int(run_id), by=USER, features=MODEL_FEATURES)
        return (f"{escape_markdown(model_spec(run.model).title)} v{run.version} is now the active model. The stored "
                "scores are still those of the model it replaced until the next scoring: score now, or let the "
                "app's background refresh do it within minutes.")
    _run(action)


def score(model: str) -> None:
    """Score ``model``'s population with its active run now (a few seconds on the demo broker)."""
    def action() -> str:
        done = scoring.score_model(runtime.get_writer_engine(), model_spec(model), by=USER)
        run = registry.get_run(runtime.get_writer_engine(), done.run.run_id)
        return (f"Scored {done.run.traders:,} traders with {model_spec(model).title.lower()} v{run.version} in "
                f"{done.run.duration_s:.1f} s.")
    _run(action)
