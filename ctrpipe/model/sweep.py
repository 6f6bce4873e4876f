"""The hyperparameter search inside the train stage: Optuna TPE with median pruning.

Trials run on a seeded sample of the training split, each with the model's fixed params
overridden by the trial's, stopping early on validation logloss; a trial whose logloss
is worse than the median of earlier finished trials at the same round stops there.

Trials are asked in batches of `sweep.parallel` (Optuna's ask and tell), run, and told
in trial order, so the seeded sampler sees the same history whichever trial of a batch
finishes first, and the search is deterministic. A trial runs on its own, against a
copy of the finished trials (`run_trial`), so a batch can run anywhere: one trial after
another in this process, or as Spark tasks at once (distributed.trial_runner). With
`parallel: 1` each trial sees every trial before it, one after another.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TrialSpec:
    """What a trial needs besides the data: its number, its params and the trials that
    had finished when it was asked (the pruner's history)."""

    number: int
    params: dict
    finished: list[optuna.trial.FrozenTrial]
    threads: int | None = None  # XGBoost's nthread for the trial (None: the model's)


@dataclass(frozen=True)
class TrialResult:
    number: int
    pruned: bool
    value: float | None  # the best validation logloss (None if pruned)
    reports: list[tuple[int, float]]  # (round, best logloss so far), as the pruner saw them
    rounds: int
    best_iteration: int


Runner = Callable[[list[TrialSpec]], list[TrialResult]]


def pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=sweep.pruner.startup_trials, n_warmup_steps=sweep.pruner.warmup_rounds
    )


def run_trial(
    spec: TrialSpec, sweep: Sweep, model: Model, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix
) -> TrialResult:
    """One trial, anywhere: a study of its own holds the finished trials, so Optuna's
    median pruner judges it exactly as it would in the sweep's study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    own = optuna.create_study(direction="minimize", pruner=pruner(sweep))
    own.add_trials(spec.finished)
    own.enqueue_trial(spec.params)
    trial = own.ask(distributions(sweep.space))
    pruning = PruneOnMedian(trial)
    threads = {} if spec.threads is None else {"nthread": spec.threads}
    booster = training.train(
        training.booster_params(model, trial.params | threads),
        dtrain,
        dvalid,
        model,
        callbacks=[pruning],
    )
    reports = own.trials[-1].intermediate_values  # the running trial's, as reported
    return TrialResult(
        number=spec.number,
        pruned=pruning.pruned,
        value=None if pruning.pruned else float(booster.best_score),
        reports=sorted(reports.items()),
        rounds=booster.num_boosted_rounds(),
        best_iteration=booster.best_iteration,
    )


def run(
    sweep: Sweep,
    model: Model,
    dtrain: xgb.DMatrix,
    dvalid: xgb.DMatrix,
    runner: Runner | None = None,
) -> optuna.Study:
    """`sweep.n_trials` trials, `sweep.parallel` at a time, by `runner` (default: one
    after another in this process, on the sample and `dvalid`); the study's best_params
    are the best complete trial's (the first trial is never pruned: the median needs
    complete trials)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=sweep.sampler_seed),
        pruner=pruner(sweep),
    )
    space = distributions(sweep.space)
    if runner is None:
        subset = sample(dtrain, sweep.sample_rows, sweep.sampler_seed)

        def runner(specs):
            return [run_trial(spec, sweep, model, subset, dvalid) for spec in specs]

    # Ask and tell instead of study.optimize: the batch's trials are told in order, and a
    # ConfigError from a trial propagates as is, without Optuna logging a traceback.
    # Trials at once take a thread each (a task slot each), wherever they run.
    threads = 1 if sweep.parallel > 1 else None
    for start in range(0, sweep.n_trials, sweep.parallel):
        finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        batch = [study.ask(space) for _ in range(min(sweep.parallel, sweep.n_trials - start))]
        results = runner([TrialSpec(t.number, t.params, finished, threads) for t in batch])
        for trial, result in zip(batch, sorted(results, key=lambda r: r.number), strict=True):
            tell(study, trial, result)
    return study


def tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> None:
    """The trial's reports, attributes and end, as if it had run in `study`."""
    for step, value in result.reports:
        trial.report(value, step)
    trial.set_user_attr("rounds", result.rounds)
    trial.set_user_attr("best_iteration", result.best_iteration)
    if result.pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, result.value)


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
