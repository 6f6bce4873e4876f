"""The hyperparameter search inside the train stage: Optuna TPE with median pruning.

Trials run one after another on a seeded sample of the training split, each with the
model's fixed params overridden by the trial's, stopping early on validation logloss; a
trial whose logloss is worse than the median of earlier trials at the same round stops
there. A seeded sampler and sequential trials make the search itself deterministic.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import optuna
import xgboost as xgb
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from ctrpipe.model import training
from ctrpipe.model.settings import Model, Sweep

COLUMNS = ("number", "state", "value")
TRIAL_ATTRS = ("rounds", "best_iteration")  # recorded per trial, after the searched params


class PruneOnMedian(xgb.callback.TrainingCallback):
    """Reports the best validation logloss so far to the trial every round, and stops
    training once the pruner says so. The best so far, not the latest: a trial is judged
    by its best round, as early stopping judges it, not for overfitting after that round.
    XGBoost cannot raise through its loop, so the caller checks `pruned` afterwards."""

    def __init__(self, trial: optuna.Trial):
        super().__init__()
        self.trial = trial
        self.best = float("inf")
        self.pruned = False

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.best = min(self.best, evals_log[training.VALIDATION][training.METRIC][-1])
        self.trial.report(self.best, step=epoch)
        self.pruned = self.trial.should_prune()
        return self.pruned


def distributions(space: dict) -> dict[str, BaseDistribution]:
    """The searched params as Optuna distributions, sorted by name: the sampler draws them
    in this order, so the search depends on the space's content, not on its YAML order."""
    out = {}
    for name, dim in sorted(space.items()):
        if dim.type == "int":
            out[name] = IntDistribution(int(dim.low), int(dim.high), log=dim.log)
        elif dim.type == "float":
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
        else:
            out[name] = CategoricalDistribution(dim.choices)
    return out


def sample(dtrain: xgb.DMatrix, rows: int, seed: int) -> xgb.DMatrix:
    """At most `rows` training rows, picked by a seeded permutation, in file order."""
    if dtrain.num_row() <= rows:
        return dtrain
    picked = np.random.default_rng(seed).permutation(dtrain.num_row())[:rows]
    return dtrain.slice(np.sort(picked))


def objective(trial: optuna.Trial, model: Model, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix) -> float:
    """Best validation logloss of one trial's params; raises TrialPruned when cut short."""
    pruning = PruneOnMedian(trial)
    booster = training.train(
        training.booster_params(model, trial.params), dtrain, dvalid, model, callbacks=[pruning]
    )
    trial.set_user_attr("rounds", booster.num_boosted_rounds())
    trial.set_user_attr("best_iteration", booster.best_iteration)
    if pruning.pruned:
        raise optuna.TrialPruned()
    return float(booster.best_score)


def run(sweep: Sweep, model: Model, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix) -> optuna.Study:
    """`sweep.n_trials` sequential trials; the study's best_params are the best complete
    trial's (the first trial is never pruned: the median needs complete trials)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=sweep.sampler_seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=sweep.pruner.startup_trials, n_warmup_steps=sweep.pruner.warmup_rounds
        ),
    )
    space = distributions(sweep.space)
    subset = sample(dtrain, sweep.sample_rows, sweep.sampler_seed)
    # Ask and tell instead of study.optimize: a ConfigError from a trial propagates as is,
    # without Optuna logging a traceback for it first.
    for _ in range(sweep.n_trials):
        trial = study.ask(space)
        try:
            value = objective(trial, model, subset, dvalid)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def trials_csv(study: optuna.Study, space: dict) -> str:
    """One row per trial: number, state, value, each searched param (by name), rounds
    trained, best iteration. A pruned trial's value is its last report (Optuna's
    convention): its best logloss up to the round it stopped."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = sorted(space)
    writer.writerow([*COLUMNS, *names, *TRIAL_ATTRS])
    for trial in study.trials:
        writer.writerow(
            [
                trial.number,
                trial.state.name,
                cell(trial.value),
                *(cell(trial.params.get(name)) for name in names),
                *(cell(trial.user_attrs.get(name)) for name in TRIAL_ATTRS),
            ]
        )
    return out.getvalue()


def cell(value) -> str:
    """Fixed formatting, so the same trials give the same bytes."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)
