"""Training on Spark (`model.engine: spark`): the splits stay Spark DataFrames and XGBoost
fits across `model.num_workers` barrier tasks (xgboost.spark), on the session the `spark`
group makes: local[*] or a standalone cluster.

Only bounded things reach the driver: the splits' checks (a few counts), each categorical
feature's most frequent values (the encoding), the sweep's seeded samples and the model.
The encoding is fitted and applied in Spark with the same rules as the local engine's
(encoding.from_counts), so the model's schema and serving do not change.

Deterministic: the rows are spread over exactly `num_workers` partitions by a hash of
their id and sorted by it within each, so the same data gives each worker the same rows
in the same order on every run, whatever the files' partitioning; xgboost.spark then
trains on those partitions as they are (it repartitions only when their number differs).
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pyarrow as pa
import xgboost as xgb
from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_type

from ctrpipe.errors import ClusterError, ConfigError, DataError
from ctrpipe.model import labelled, sweep, training
from ctrpipe.model.encoding import FeatureSchema, from_counts
from ctrpipe.model.settings import Model, Sweep

VALIDATION = "_validation"  # marks the validation rows in the one frame xgboost.spark reads
OBJECTIVE = "binary:logistic"  # SparkXGBClassifier's, fixed


def read_split(session: SparkSession, path: str | Path, roles: dict) -> DataFrame:
    """The id, label, weight and features of one split as a DataFrame, refused with the
    local engine's words (labelled.read) when a column is missing, there are no rows, or
    the labels or weights are unusable."""
    columns = [roles["id"], *training.split_columns(roles)]
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run `dvc repro generate` first")
    df = session.read.parquet(str(path))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: column '{missing[0]}' missing (features.json lists it)")
    df = df.select(*dict.fromkeys(columns))
    label, weight = roles["label"], roles["weight"]
    facts = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col(label).isNull()).alias("label_nulls"),
        F.count_if(F.col(weight).isNull()).alias("weight_nulls"),
        F.min(weight).alias("min_weight"),
    ).first()
    if facts["rows"] == 0:
        raise DataError(f"{path}: no rows")
    types = {f.name: to_arrow_type(f.dataType) for f in df.schema.fields}

    def classes():  # three distinct labels are enough to refuse a third class
        found = df.select(F.col(label).cast("double")).distinct().limit(3).collect()
        return [r[0] for r in found]

    labelled.check_label_facts(
        types[label], facts["label_nulls"], classes, f"{path}: column '{label}'"
    )
    labelled.check_weight_facts(
        types[weight],
        facts["weight_nulls"],
        lambda: facts["min_weight"],
        f"{path}: column '{weight}'",
    )
    return df


def fit_encoding(
    train: DataFrame, roles: dict, max_categories: int, min_count: int
) -> FeatureSchema:
    """encoding.fit, counted by Spark: per categorical feature only the values that can
    enter its vocabulary (at least `min_count` rows, the `max_categories` most frequent)
    reach the driver."""
    counts = {}
    for name in roles["categorical"]:
        value = F.col(name).cast("string")
        top = (
            train.where(value.isNotNull())
            .groupBy(value.alias("value"))
            .count()
            .where(F.col("count") >= min_count)
            .orderBy(F.desc("count"), "value")
            .limit(max_categories)
        )
        counts[name] = {r["value"]: r["count"] for r in top.collect()}
    return from_counts(counts, roles, max_categories, min_count)


def encoded(df: DataFrame, schema: FeatureSchema) -> DataFrame:
    """The model's inputs as FeatureSchema.encode makes them, in Spark: numbers as
    doubles, each categorical value its vocabulary code (`other` outside it, null stays
    missing); then the label, the weight and the id."""
    columns = [F.col(n).cast("double").alias(n) for n in schema.numeric]
    for name, vocab in schema.categorical.items():
        text = F.col(name).cast("string")
        if vocab:
            pairs = itertools.chain.from_iterable(
                (F.lit(v), F.lit(float(i))) for i, v in enumerate(vocab)
            )
            code = F.coalesce(F.create_map(*pairs)[text], F.lit(float(schema.other_code(name))))
        else:
            code = F.lit(float(schema.other_code(name)))
        columns.append(F.when(text.isNull(), None).otherwise(code).cast("double").alias(name))
    return df.select(
        *columns,
        F.col(schema.label).cast("double").alias(schema.label),
        F.col(schema.weight).cast("double").alias(schema.weight),
        F.col(schema.id).cast("string").alias(schema.id),
    )


def sample(df: DataFrame, schema: FeatureSchema, rows: int, seed: int) -> pa.Table:
    """At most `rows` rows, the same ones on every run and cluster: those whose seeded
    hash of the id is smallest. Only they reach the driver, as an Arrow table."""
    rank = F.xxhash64(F.col(schema.id).cast("string"), F.lit(seed))
    picked = df.withColumn("_rank", rank).orderBy("_rank", schema.id).limit(rows).drop("_rank")
    return picked.toArrow()


def spread(df: DataFrame, key: str, workers: int) -> DataFrame:
    """`workers` partitions by a hash of `key`, each sorted by it: the same rows, in the
    same order, reach the same worker on every run."""
    return df.repartition(workers, F.xxhash64(key)).sortWithinPartitions(key)


def check_slots(
    session: SparkSession, workers: int, wait: float, setting: str = "model.num_workers"
) -> int:
    """The session's task slots, once there are `workers` of them; a ConfigError naming
    `setting` and the slots found when there are fewer after `wait` seconds
    (xgboost.spark's barrier stage would otherwise wait for them forever, and trials
    meant to run at once would not)."""
    from xgboost.spark.utils import _get_max_num_concurrent_tasks  # the count it checks

    if session.sparkContext.master.startswith("local"):
        wait = 0  # local mode's slots are all there from the start
    deadline = time.monotonic() + wait
    while True:
        slots = _get_max_num_concurrent_tasks(session.sparkContext)
        if slots >= workers or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if slots < workers:
        raise ConfigError(
            f"{setting}: {workers} need {workers} Spark task slots at once; "
            f"the Spark session ({session.sparkContext.master}) has {slots}"
        )
    return slots


def fit(
    train: DataFrame,
    valid: DataFrame,
    schema: FeatureSchema,
    params: dict,
    model: Model,
    slots_wait: float,
) -> xgb.Booster:
    """Up to `num_boost_round` rounds on `model.num_workers` workers, stopping early on
    validation logloss as training.train does; the booster, with its best iteration."""
    from xgboost.spark import SparkXGBClassifier

    rows = encoded(train, schema).withColumn(VALIDATION, F.lit(False))
    rows = rows.unionByName(encoded(valid, schema).withColumn(VALIDATION, F.lit(True)))
    # nthread is Spark's: each worker gets spark.task.cpus threads. The classifier sets
    # the objective itself; xgboost.spark refuses both.
    booster_params = {k: v for k, v in params.items() if k not in ("nthread", "objective")}
    if params.get("objective", OBJECTIVE) != OBJECTIVE:
        raise ConfigError(
            f"model.params.objective: the spark engine fits {OBJECTIVE} only "
            f"(got {params['objective']!r})"
        )
    # Its INFO lines (each fit's params) and every round's evaluation are noise in a stage's log.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    estimator = SparkXGBClassifier(
        features_col=schema.names,
        label_col=schema.label,
        weight_col=schema.weight,
        validation_indicator_col=VALIDATION,
        num_workers=model.num_workers,
        n_estimators=model.num_boost_round,
        early_stopping_rounds=model.early_stopping_rounds,
        missing=float("nan"),
        verbose=False,
        **booster_params,
    )
    # The slots again, at the barrier stage's door: a worker lost since the stage's first
    # check (during the sweep) would leave Spark's own barrier check retrying for 10
    # minutes (40 checks 15 s apart) before the job fails.
    check_slots(train.sparkSession, model.num_workers, slots_wait)
    try:
        fitted = estimator.fit(spread(rows, schema.id, model.num_workers))
    except ValueError as exc:  # xgboost.spark's own param checks
        raise ConfigError(f"model.params: xgboost.spark rejected them ({exc})") from None
    except Py4JJavaError as exc:  # a job Spark gave up on: a lost worker, too few slots
        master = train.sparkSession.sparkContext.master
        raise ClusterError(
            f"model.num_workers: the fit on {master} failed, no model written: {cause(exc)}"
        ) from None
    booster = fitted.get_booster()
    booster.feature_names = schema.names
    return booster


def trial_runner(
    session: SparkSession, search: Sweep, model: Model, dtrain: xgb.DMatrix, dvalid: xgb.DMatrix
) -> sweep.Runner:
    """Runs a batch of the sweep's trials as Spark tasks at once, a trial per task, each
    a single-process fit (sweep.run_trial) on the sweep's sample of `dtrain` and on
    `dvalid`. The rows reach the executors once, broadcast as arrays."""
    subset = sweep.sample(dtrain, search.sample_rows, search.sampler_seed)
    data = session.sparkContext.broadcast([_arrays(subset), _arrays(dvalid)])

    def task(spec: sweep.TrialSpec) -> sweep.TrialResult:
        train, valid = (_matrix(*arrays) for arrays in data.value)
        return sweep.run_trial(spec, search, model, train, valid)

    def run(specs: list[sweep.TrialSpec]) -> list[sweep.TrialResult]:
        return session.sparkContext.parallelize(specs, len(specs)).map(task).collect()

    return run


def cause(exc: Py4JJavaError) -> str:
    """The Java exception's message on one line, without its stack trace."""
    lines = str(exc.java_exception.getMessage() or exc.java_exception.toString()).splitlines()
    kept = itertools.takewhile(lambda line: not line.strip().startswith("at "), lines)
    return " ".join(" ".join(kept).split())


def _arrays(matrix: xgb.DMatrix) -> tuple:
    """A DMatrix's rows as plain arrays: its present values (CSR), labels, weights."""
    return matrix.get_data(), matrix.get_label(), matrix.get_weight(), matrix.feature_names


def _matrix(data, label, weight, names) -> xgb.DMatrix:
    return xgb.DMatrix(data, label=label, weight=weight, feature_names=names, nthread=1)
