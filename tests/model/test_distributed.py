"""The train stage's spark engine (ctrpipe/model/distributed.py): the encoding fitted and
applied by Spark equals the local one, bad splits are refused with the local words, too
many workers are refused before training, and on a standalone cluster the same data
gives the same model bytes with 2 workers and with 3, as good as the local engine's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml

from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import distributed, encoding, metrics, sweep, training
from ctrpipe.model.settings import Model, Sweep
from tests.conftest import ROOT, params_dict
from tests.model.test_training import (
    OUTPUTS,
    ROLES,
    SMALL,
    inputs,  # noqa: F401 (the splits fixture)
    table,
)
from tests.support.spark_cluster import standalone_cluster
from tests.support.stages import SPARK


@pytest.fixture(scope="module")
def splits(inputs) -> Path:  # noqa: F811
    """test_training's splits, features.json beside them."""
    return inputs


def train_command(splits: Path, out: Path, **changes) -> list[str]:
    """`python -m stages.train` on `splits`, writing to `out`, with its params there."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params_dict(**{**SMALL, **changes})))
    outs = dict(zip(("model", "schema", "model-params", "trials"), OUTPUTS))
    return [
        sys.executable,
        "-m",
        "stages.train",
        f"--params={out / 'params.yaml'}",
        *(
            f"--{k}={splits / f}"
            for k, f in (
                ("features", "features.json"),
                ("train", "train.parquet"),
                ("validation", "validation.parquet"),
            )
        ),
        *(f"--{key}={out / name}" for key, name in outs.items()),
    ]


def train_stage(splits: Path, out: Path, **changes) -> subprocess.CompletedProcess:
    """The train stage in its own process (its own Spark session), run to its end."""
    command = train_command(splits, out, **changes)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)


def spark_engine(workers: int, master: str) -> dict:
    return {
        "model": {**SMALL["model"], "engine": "spark", "num_workers": workers},
        "spark": {**SPARK, "master": master},
    }


@pytest.mark.integration
def test_the_encoding_fitted_and_applied_by_spark_is_the_local_one(spark, splits):
    local = training.read_split(splits / "train.parquet", ROLES)
    df = distributed.read_split(spark, splits / "train.parquet", ROLES)
    for max_categories, min_count in ((20, 5), (2, 1), (50, 400)):
        expected = encoding.fit(local, ROLES, max_categories, min_count)
        schema = distributed.fit_encoding(df, ROLES, max_categories, min_count)
        assert schema == expected
    encoded = distributed.encoded(df, schema).toArrow()
    by_id = {i: n for n, i in enumerate(encoded.column("id").to_pylist())}
    ids = pq.read_table(splits / "train.parquet", columns=["id"]).column("id")  # local's order
    order = [by_id[i] for i in ids.to_pylist()]
    got = np.column_stack(
        [encoded.column(n).to_numpy(zero_copy_only=False)[order] for n in schema.names]
    ).astype(np.float32)
    np.testing.assert_array_equal(got, schema.encode(local))  # NaNs and `other` codes too


@pytest.mark.integration
def test_the_seeded_sample_is_the_same_rows_however_the_data_is_partitioned(spark, splits):
    df = distributed.read_split(spark, splits / "train.parquet", ROLES)
    schema = distributed.fit_encoding(df, ROLES, 20, 5)
    one = distributed.sample(df, schema, 500, seed=3)
    other = distributed.sample(df.repartition(7), schema, 500, seed=3)
    assert one.num_rows == 500 and one.to_pandas().equals(other.to_pandas())  # NaN == NaN
    assert distributed.sample(df, schema, 500, seed=4).column("id") != one.column("id")


@pytest.mark.integration
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop_columns(["price"]), r"column 'price' missing \(features.json lists it\)"),
        (lambda t: t.slice(0, 0), "no rows"),
        (
            lambda t: t.set_column(2, "label", pa.array([None] * t.num_rows, pa.int32())),
            f"column 'label': {4500} null labels",
        ),
        (
            lambda t: t.set_column(2, "label", pa.array([2] * t.num_rows, pa.int32())),
            r"labels must be 0 or 1 \(found 2\)",
        ),
        (
            lambda t: t.set_column(2, "label", pa.array([1] * t.num_rows, pa.int32())),
            "only the class 1; expected both 0 and 1",
        ),
        (
            lambda t: t.set_column(t.num_columns - 1, "weight", pa.array([0.0] * t.num_rows)),
            "weights must be positive and not null",
        ),
        (
            lambda t: t.set_column(t.num_columns - 1, "weight", pa.array(["1"] * t.num_rows)),
            "has type string; expected a number",
        ),
    ],
)
def test_a_bad_split_is_refused_with_the_local_engines_words(spark, tmp_path, change, message):
    rows = table(6000, seed=1)
    bad = change(rows.slice(0, 4500))
    pq.write_table(bad, tmp_path / "train.parquet")
    with pytest.raises(DataError, match=message) as local:
        training.read_split(tmp_path / "train.parquet", ROLES)
    with pytest.raises(DataError) as on_spark:
        distributed.read_split(spark, tmp_path / "train.parquet", ROLES)
    assert str(on_spark.value) == str(local.value)


@pytest.mark.integration
def test_more_workers_than_task_slots_are_refused_before_training(spark):
    assert distributed.check_slots(spark, 2, wait=0) == 2  # local[2]
    with pytest.raises(
        ConfigError, match=r"model.num_workers: 3 need 3 Spark task slots at once; .* has 2$"
    ):
        distributed.check_slots(spark, 3, wait=0)


@pytest.mark.integration
def test_the_refit_checks_the_slots_at_its_start(spark, splits):
    """Fewer slots at the refit than at the stage's first check (a worker lost during
    the sweep) are refused at once; Spark's barrier check would retry for 10 minutes."""
    train, valid = (
        distributed.read_split(spark, splits / f"{name}.parquet", ROLES)
        for name in ("train", "validation")
    )
    schema = distributed.fit_encoding(train, ROLES, 20, 5)
    model = Model.model_validate({**SMALL["model"], "engine": "spark", "num_workers": 3})
    with pytest.raises(ConfigError, match=r"model.num_workers: 3 need 3 .* has 2$"):
        distributed.fit(train, valid, schema, training.booster_params(model), model, 0)


@pytest.mark.slow
def test_the_stage_refuses_more_workers_than_slots_and_writes_nothing(splits, tmp_path):
    done = train_stage(splits, tmp_path, **spark_engine(3, "local[2]"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: model.num_workers: 3")
    assert not any((tmp_path / name).exists() for name in OUTPUTS)


@pytest.mark.slow
def test_on_a_standalone_cluster_the_same_data_gives_the_same_bytes(splits, tmp_path):
    """The train stage with the spark engine on local[2]; then, in another driver process
    on a standalone cluster, the same fit with 2 workers and twice with 3 (users report
    models that differ run to run with 3+ workers, dmlc/xgboost#6715): the same bytes
    for the same worker count, local or cluster. The model is as good as the local
    engine's."""
    local = train_stage(splits, tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    staged = train_stage(splits, tmp_path / "on_spark", **spark_engine(2, "local[2]"))
    assert staged.returncode == 0, staged.stderr[-3000:]
    (tmp_path / "spark").mkdir()
    with standalone_cluster(tmp_path / "spark", cores=3) as master:
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.support.spark_fits",
                master,
                str(splits),
                str(tmp_path / "on_spark"),
                str(tmp_path),
                "2",
                "3",
                "3",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert again.returncode == 0, again.stderr[-3000:]
    model = (tmp_path / "on_spark" / "model.ubj").read_bytes()
    assert (tmp_path / "fit-0-w2.ubj").read_bytes() == model
    three = [(tmp_path / f"fit-{i}-w3.ubj").read_bytes() for i in (1, 2)]
    assert three[0] == three[1] and three[0] != model

    valid = pq.read_table(splits / "validation.parquet")
    label, weight = valid["label"].to_numpy(), valid["weight"].to_numpy()
    schema = encoding.FeatureSchema.load(tmp_path / "local" / "schema.json")
    assert encoding.FeatureSchema.load(tmp_path / "on_spark" / "schema.json") == schema
    auc = {}
    for name, path in (
        ("local", tmp_path / "local" / "model.ubj"),
        ("2 workers", tmp_path / "on_spark" / "model.ubj"),
        ("3 workers", tmp_path / "fit-1-w3.ubj"),
    ):
        booster = xgb.Booster(model_file=str(path))
        prob = booster.predict(xgb.DMatrix(schema.encode(valid), feature_names=schema.names))
        auc[name] = metrics.roc_auc(label, prob.astype(np.float64), weight)
    assert all(abs(a - auc["local"]) < 0.01 for a in auc.values()), auc


def sweep_inputs(splits: Path, **changes):
    raw = params_dict(**{**SMALL, "sweep": {**SMALL["sweep"], **changes}})
    model, search = Model.model_validate(raw["model"]), Sweep.model_validate(raw["sweep"])
    train_table = training.read_split(splits / "train.parquet", ROLES)
    schema = encoding.fit(train_table, ROLES, 20, 5)
    valid_table = training.read_split(splits / "validation.parquet", ROLES)
    dtrain = training.to_dmatrix(train_table, schema, "train", 1)
    return model, search, dtrain, training.to_dmatrix(valid_table, schema, "validation", 1)


def trials_of(study) -> list[tuple]:
    return [(t.number, t.state.name, t.value, t.params, t.user_attrs) for t in study.trials]


@pytest.mark.integration
def test_one_at_a_time_the_sweep_is_optunas_own_loop(splits):
    """parallel: 1 prunes and samples exactly as trials reporting into the sweep's own
    study do (the loop the sweep had before trials could run elsewhere)."""
    model, search, dtrain, dvalid = sweep_inputs(splits, n_trials=8)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=search.sampler_seed),
        pruner=sweep.pruner(search),
    )
    subset = sweep.sample(dtrain, search.sample_rows, search.sampler_seed)
    for _ in range(search.n_trials):
        trial = study.ask(sweep.distributions(search.space))
        pruning = sweep.PruneOnMedian(trial)
        booster = training.train(
            training.booster_params(model, trial.params), subset, dvalid, model, [pruning]
        )
        trial.set_user_attr("rounds", booster.num_boosted_rounds())
        trial.set_user_attr("best_iteration", booster.best_iteration)
        if pruning.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, float(booster.best_score))
    ours = sweep.run(search, model, dtrain, dvalid)
    assert "PRUNED" in {t.state.name for t in ours.trials}
    assert trials_of(ours) == trials_of(study)


@pytest.mark.integration
def test_trials_as_spark_tasks_give_the_sweep_run_one_after_another(spark, splits):
    """Two trials at a time on Spark tasks, told in order: the same trials, values and
    best trial as the same batches run in this process, whichever task ends first."""
    model, search, dtrain, dvalid = sweep_inputs(splits, n_trials=8, parallel=2)
    on_spark = sweep.run(
        search,
        model,
        dtrain,
        dvalid,
        distributed.trial_runner(spark, search, model, dtrain, dvalid),
    )
    here = sweep.run(search, model, dtrain, dvalid)
    subset = sweep.sample(dtrain, search.sample_rows, search.sampler_seed)

    def last_first(specs):  # the batch's later trial finishes first
        return [sweep.run_trial(s, search, model, subset, dvalid) for s in reversed(specs)]

    assert trials_of(on_spark) == trials_of(here)
    assert trials_of(sweep.run(search, model, dtrain, dvalid, last_first)) == trials_of(here)
    assert on_spark.best_trial.number == here.best_trial.number
    assert "PRUNED" in {t.state.name for t in here.trials}


@pytest.mark.slow
def test_the_stage_runs_its_trials_as_spark_tasks(splits, tmp_path):
    """The local engine with `sweep.parallel: 2`: the stage's trials, run as tasks on
    local[2], are those of the same batches run one after another here; 3 at a time is
    refused by name on 2 slots."""
    parallel = {"sweep": {**SMALL["sweep"], "parallel": 2}, "spark": SPARK}
    done = train_stage(splits, tmp_path / "two", **parallel)
    assert done.returncode == 0, done.stderr[-3000:]
    model, search, dtrain, dvalid = sweep_inputs(splits, parallel=2)
    expected = sweep.trials_csv(sweep.run(search, model, dtrain, dvalid), search.space)
    assert (tmp_path / "two" / "trials.csv").read_text() == expected

    parallel["sweep"]["parallel"] = 3
    refused = train_stage(splits, tmp_path / "three", **parallel)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: sweep.parallel: 3 need 3")
    assert not (tmp_path / "three" / "model.ubj").exists()


def command_line(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:  # gone, or a zombie: executors start and reap short-lived scripts
        return []


def kill_a_worker_once_it_fits(cluster: Path, stage: subprocess.Popen) -> bool:
    """SIGKILL the first of `cluster`'s Worker JVMs (and its executor) whose executor runs
    Python: the barrier stage's tasks, the only Python the spark engine runs on executors.
    Whether one was killed before the stage ended."""
    while stage.poll() is None:
        for proc in psutil.process_iter():
            line = " ".join(command_line(proc))
            if "deploy.worker.Worker" not in line or str(cluster) not in line:
                continue
            tree = proc.children(recursive=True)
            if any("pyspark.daemon" in command_line(p) for p in tree):
                for p in [proc, *tree]:
                    p.kill()
                return True
        time.sleep(0.1)
    return False


def train_losing_a_worker(splits: Path, tmp_path: Path, **changes) -> tuple[str, str]:
    """The train stage on a cluster of two 1-core workers (spark engine, 2 workers, with
    `changes`), one of which is killed once Python runs on it; the master's address and
    the last line the stage wrote, once it failed with nothing written."""
    cluster, out = tmp_path / "spark", tmp_path / "out"
    cluster.mkdir()
    with standalone_cluster(cluster, cores=1, workers=2) as master:
        engine = spark_engine(2, master)
        engine["spark"] |= changes.pop("spark", {})
        command = train_command(splits, out, **engine, **changes)
        with (tmp_path / "stderr").open("w") as stderr:
            stage = subprocess.Popen(command, stdout=stderr, stderr=stderr, cwd=ROOT)
            try:
                killed = kill_a_worker_once_it_fits(cluster, stage)
                code = stage.wait(timeout=300)
            finally:
                stage.kill()
    log = (tmp_path / "stderr").read_text()
    assert killed and code == 1, log[-3000:]
    assert not any((out / name).exists() for name in OUTPUTS)
    return master, log.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_worker_lost_mid_fit_fails_the_stage_in_one_line_and_writes_nothing(splits, tmp_path):
    """A cluster of two 1-core workers, a fit on both; one is killed once its task runs.
    Spark does not retry a failed barrier stage that returns results: the stage names the
    cause in one line, and no output is written. Without the catch in distributed.fit the
    stage ended in a Py4J traceback."""
    master, last = train_losing_a_worker(splits, tmp_path)
    assert last.startswith(f"error: model.num_workers: the fit on {master} failed, no model "), last
    assert "barrier" in last and "worker lost" in last, last


@pytest.mark.slow
def test_a_worker_lost_during_the_parallel_sweep_stops_the_stage_before_the_refit(splits, tmp_path):
    """Two 1-core workers, the spark engine and `sweep.parallel: 2`; one worker is killed
    once a trial runs on it. Spark runs its lost trials again on the other, so the sweep
    ends; the refit then finds one task slot for its two workers and the stage stops in
    one line naming them (it checks the slots at its start), with nothing written."""
    master, last = train_losing_a_worker(
        splits,
        tmp_path,
        sweep={**SMALL["sweep"], "parallel": 2},
        spark={"slots_wait_seconds": 15},  # the refit's wait for the lost slot
    )
    assert last == (
        f"error: model.num_workers: 2 need 2 Spark task slots at once; the Spark session "
        f"({master}) has 1"
    )
