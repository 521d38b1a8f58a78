"""Predictions (retention managers; training and promotion for admins): churn, deposit and first-deposit
probabilities for every trader with their reasons, the model card against its baseline and a random
split, drift, and training and promotion. Everything is read as the last scoring and training stored it."""

from __future__ import annotations

import streamlit as st

from components import page
from components import predictions_actions as actions
from components import predictions_views as views

TABS = ["Scores", "Model card", "Drift", "Training"]

view = page.header("Predictions", "How likely each trader is to churn, deposit or make a first deposit, why, and how "
                   "far to trust it: calibrated probabilities from models checked on data they never saw.")
actions.render_flash()
model = views.pick_model(key="predictions.model")
state = views.load_state(model)
if not state.runs:
    views.render_no_model(state, key="predictions.training")
    st.stop()

scores_tab, card_tab, drift_tab, training_tab = st.tabs(TABS, key="predictions.tab", bind="query-params")
if scores_tab.open:
    with scores_tab:
        views.render_scores(state, view, key="predictions.scores")
if card_tab.open:
    with card_tab:
        views.render_cards(state, key="predictions.card")
if drift_tab.open:
    with drift_tab:
        views.render_drift(state, key="predictions.drift")
if training_tab.open:
    with training_tab:
        views.render_training(state, key="predictions.training")
