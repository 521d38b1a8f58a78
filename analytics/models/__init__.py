"""Churn, deposit and FTD probabilities: trained on past snapshots, calibrated, explained, scored.

One module per step, each usable on its own:

- :mod:`.specs`: the three models (who is scored, what the outcome is, the horizon);
- :mod:`.labels`: each model's population and outcome at a snapshot time, in SQL;
- :mod:`.dataset`: the snapshot plan (train, validation, calibration/test) and the labelled rows;
- :mod:`.metrics`: ROC/PR AUC, Brier, calibration error, reliability, lift and gain;
- :mod:`.training`: XGBoost with early stopping, Platt calibration on the margin, the baseline and
  the random-split comparison, the model card's figures;
- :mod:`.explain`: SHAP contributions (XGBoost's own TreeSHAP) and plain-language reasons;
- :mod:`.registry`: saved model runs, the active model per kind, promotion;
- :mod:`.scoring`: scores and stored reasons for every trader in a population, drift (PSI);
- :mod:`.jobs`: training in the background with progress any page can read;
- :mod:`.fields`: scores and score bands as fields of segment rules.

docs/semantics.md, "Scores", states the definitions these modules implement.
"""

import os

# XGBoost's OpenMP threads spin-wait for work by default: on a busy 2-core machine (the app's other
# sessions, the database) a 2-thread fit took 7-16 s instead of 0.5 s. Passive waiting costs nothing
# when the machine is idle. libgomp reads this once, when it loads, so it is set before any module
# of this package imports xgboost (an operator's own setting wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

