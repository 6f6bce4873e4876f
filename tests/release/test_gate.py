"""The promotion gate: the fast bootstrap against sklearn, the tree-node cost measure, PSI,
every kind of check on real packages (built as test_package.py builds them) and on
predictions made up to order, and the stage as a user runs it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import xgboost as xgb
import yaml
from sklearn.metrics import roc_auc_score

from ctrpipe.model import drift, evaluation, package
from ctrpipe.model.settings import Evaluate
from ctrpipe.release import bootstrap, gate
from ctrpipe.release.settings import Gate, Guards
from stages import gate as gate_stage
from tests.conftest import ROOT, params_dict
from tests.support.models import SETTINGS, inputs, traffic
from tests.support.project import folder_files

pytestmark = pytest.mark.unit

SLICES = ["device", "position"]
EVALUATE = {"min_slice_rows": 200, "calibration_bins": 10}
# The tiny models reach a golden ROC AUC of 0.55 to 0.68 and a log loss near 0.28.
GATE = {
    "floors": {"roc_auc": 0.6, "logloss_gain": 0.0, "ece_of_rate": 1.0, "size_bytes": 1_000_000},
    "bootstrap": {"resamples": 200, "confidence": 0.95, "seed": 23},
}


# --- the bootstrap -----------------------------------------------------------------------


def test_fast_auc_equals_sklearn_with_weights_and_ties():
    rng = np.random.default_rng(0)
    for n, decimals in ((50, 0), (3000, 1), (20_000, 5)):  # from all-tied to few ties
        y = (rng.random(n) < 0.2).astype(int)
        p = np.round(rng.random(n) * 0.5 + 0.3 * y, decimals)
        w = rng.uniform(0.2, 4, n)
        assert bootstrap.weighted_auc(y, p, w) == pytest.approx(
            roc_auc_score(y, p, sample_weight=w), abs=1e-12
        )
        assert bootstrap.weighted_auc(y, p, np.ones(n)) == pytest.approx(
            roc_auc_score(y, p), abs=1e-12
        )


def made_up(n: int, seed: int):
    """Labels, and two models' scores: a sharper candidate and a noisier production."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2 + 1.5 * signal)))).astype(int)
    candidate = 1 / (1 + np.exp(-(-2 + 1.5 * signal)))
    production = 1 / (1 + np.exp(-(-2 + 0.5 * signal + rng.normal(size=n))))
    return y, candidate, production


def test_bootstrap_is_seeded_and_paired():
    y, candidate, production = made_up(5000, 1)
    w = np.ones(len(y))
    auc = bootstrap.paired_gain("roc_auc", y, w, candidate, production, 300, 0.95, 7)
    assert auc == bootstrap.paired_gain("roc_auc", y, w, candidate, production, 300, 0.95, 7)
    assert auc != bootstrap.paired_gain("roc_auc", y, w, candidate, production, 300, 0.95, 8)
    observed = roc_auc_score(y, candidate) - roc_auc_score(y, production)
    assert 0 < auc.low < observed < auc.high and auc.mean == pytest.approx(observed, abs=0.01)
    # Log loss: lower is better, so the better candidate's gain is positive too.
    loss = bootstrap.paired_gain("logloss", y, w, candidate, production, 300, 0.95, 7)
    assert loss.low > 0
    swapped = bootstrap.paired_gain("roc_auc", y, w, production, candidate, 300, 0.95, 7)
    assert swapped.high < 0 and swapped.low == pytest.approx(-auc.high)


def test_identical_models_give_a_zero_interval_and_fail_significance():
    y, candidate, _ = made_up(3000, 2)
    interval = bootstrap.paired_gain(
        "roc_auc", y, np.ones(len(y)), candidate, candidate, 200, 0.95, 0
    )
    assert (interval.low, interval.high, interval.mean) == (0, 0, 0)
    check = gate.significance(interval, 0.95)
    assert not check.passed and check.reason.endswith("lower end <= 0")


def test_an_undefined_interval_fails_significance():
    y = np.zeros(100, int)  # no positive in any resample: AUC undefined everywhere
    interval = bootstrap.paired_gain(
        "roc_auc", y, np.ones(100), np.random.rand(100), np.random.rand(100), 100, 0.95, 0
    )
    assert interval.low is None and interval.undefined == 100
    check = gate.significance(interval, 0.95)
    assert not check.passed and "undefined" in check.reason


# --- packages, data and the stage --------------------------------------------------------


def train(tiny, blind: tuple[str, ...] = (), **params) -> bytes:
    """A model on tiny's training rows; `blind` features are hidden from it (all NaN)."""
    schema, rows = tiny[0], tiny[1]
    x = schema.encode(rows)
    for name in blind:
        x[:, schema.names.index(name)] = np.nan
    settings = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.2,
        "nthread": 1,
        "seed": 0,
        **params,
    }
    rounds = settings.pop("rounds", 30)
    dtrain = xgb.DMatrix(
        x,
        rows.column("label").to_numpy(),
        weight=rows.column("weight").to_numpy(),
        feature_names=schema.names,
    )
    return bytes(xgb.train(settings, dtrain, num_boost_round=rounds).save_raw("ubj"))


@pytest.fixture(scope="module")
def ws(tiny, tmp_path_factory) -> Path:
    """Packages, golden and validation files and a params.yaml, in one folder.

    good: test_package's model (30 trees of depth 4); good_again: the same model in a
    package with another card (so another digest); blind: the same training without the
    device feature (as big and as slow, less accurate); stump: one tree of depth 1."""
    root = tmp_path_factory.mktemp("gate")
    models = {
        "good": (tiny[3], "c0ffee"),
        "good_again": (tiny[3], "another commit"),
        "blind": (train(tiny, blind=("device",)), "c0ffee"),
        "stump": (train(tiny, max_depth=1, rounds=1), "c0ffee"),
    }
    for name, (model, commit) in models.items():
        package.write(
            root / name, package.build(inputs(tiny, model=model, commit=commit), SETTINGS)
        )
    (root / "data").mkdir()
    pq.write_table(traffic(20_000, 5, sample=False), root / "data/golden.parquet")
    pq.write_table(traffic(6_000, 6, sample=False), root / "data/validation.parquet")
    write_params(root / "params.yaml")
    return root


def write_params(path: Path, **gate_changes) -> Path:
    raw = params_dict(evaluate=EVALUATE, gate={**GATE, **gate_changes}, data={"slices": SLICES})
    path.write_text(yaml.safe_dump(raw))
    return path


def production(folder: Path, source: Path | None, version: str | None = "v1.0.0") -> Path:
    """A production folder: ref.json, and a copy of the package `source` when given."""
    folder.mkdir(parents=True)
    digest = None
    if source is not None:
        shutil.copytree(source, folder / "package")
        digest = package.digest(folder / "package")
    ref = {
        "version": version if source else None,
        "tag": "model#prod#1" if source else None,
        "commit": "1234abcd" if source else None,
        "digest": digest,
    }
    (folder / "ref.json").write_text(json.dumps(ref))
    return folder


def run(ws: Path, out: Path, candidate: str = "good", **paths) -> dict:
    """The stage on the workspace; returns gate.json."""
    args = {
        "params": ws / "params.yaml",
        "candidate": ws / candidate,
        "golden": ws / "data/golden.parquet",
        "validation": ws / "data/validation.parquet",
        **paths,
    }
    outs = [f"--report={out / 'gate.json'}", f"--summary={out / 'summary.md'}"]
    gate_stage.main([f"--{k}={v}" for k, v in args.items()] + outs)
    return json.loads((out / "gate.json").read_text())


def failing(report: dict) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["passed"]]


def test_the_first_model_passes_on_floors_and_fails_when_a_floor_is_raised(ws, tmp_path, capsys):
    nothing = production(tmp_path / "production", None)
    report = run(ws, tmp_path / "one", production=nothing)
    assert report["verdict"] == "pass" and report["reason"] == "all 4 checks passed"
    assert [c["name"] for c in report["checks"]] == [
        "floor.roc_auc",
        "floor.logloss",
        "floor.ece",
        "floor.size_bytes",
    ]
    assert report["production"] == {
        "version": None,
        "tag": None,
        "commit": None,
        "digest": None,
        "metrics": None,
    }
    assert report["bootstrap"] is None
    assert report["candidate"]["digest"] == package.digest(ws / "good")
    out = capsys.readouterr().out
    assert out.startswith("gate: pass — candidate (nothing in production) on 20000 golden rows")

    params = write_params(tmp_path / "params.yaml", floors={**GATE["floors"], "roc_auc": 0.9})
    report = run(ws, tmp_path / "two", production=nothing, params=params)
    assert report["verdict"] == "fail" and failing(report) == ["floor.roc_auc"]
    assert report["reason"] == "failed 1 of 4 checks: floor.roc_auc"
    check = report["checks"][0]
    assert (
        check["threshold"] == 0.9 and check["reason"] == f"roc_auc {check['value']:.6g} < floor 0.9"
    )
    assert "**failed 1 of 4 checks: floor.roc_auc**" in (tmp_path / "two/summary.md").read_text()


def test_a_worse_candidate_is_rejected_naming_the_failing_checks(ws, tmp_path, capsys):
    good = production(tmp_path / "production", ws / "good")
    report = run(ws, tmp_path / "out", candidate="stump", production=good)
    names = failing(report)
    assert report["verdict"] == "fail"
    for name in (
        "margin.absolute",
        "margin.relative",
        "significance",
        "guard.logloss",
        "slice.device=ctv.roc_auc",
    ):
        assert name in names and name in report["reason"], name
    # Smaller and faster than production: those guards pass.
    passed = {c["name"] for c in report["checks"] if c["passed"]}
    assert {"new_model", "guard.latency_us", "guard.size_bytes"} <= passed
    assert report["bootstrap"]["high"] < 0
    assert report["production"]["version"] == "v1.0.0"
    assert report["production"]["tag"] == "model#prod#1"
    line = capsys.readouterr().out.strip()
    assert line.startswith("gate: fail — candidate vs v1.0.0 on 20000 golden rows: roc_auc ")
    assert "margin.absolute" in line


def test_a_better_candidate_passes_with_a_significant_gain(ws, tmp_path):
    blind = production(tmp_path / "production", ws / "blind")
    report = run(ws, tmp_path / "out", candidate="good", production=blind)
    assert report["verdict"] == "pass", report["reason"]
    assert report["bootstrap"]["low"] > 0 and report["bootstrap"]["resamples"] == 200
    checks = {c["name"]: c for c in report["checks"]}
    assert {"slice.device=mobile.roc_auc", "slice.position=3.roc_auc"} <= set(checks)
    assert not any(name.startswith("slice.device=watch") for name in checks)  # too small
    gain = report["candidate"]["metrics"]["roc_auc"] - report["production"]["metrics"]["roc_auc"]
    assert checks["margin.absolute"]["reason"] == f"roc_auc gain {gain:.6g} >= 0.001"
    nodes = report["candidate"]["metrics"]["latency"]["nodes_per_row"]
    assert 30 < nodes <= 150
    latency = checks["guard.latency_us"]  # the gate.latency line: 5.4 us + 7.1 ns per node
    assert latency["value"] == pytest.approx(5.4 + 7.1e-3 * nodes)
    assert 0.9 < latency["value"] / latency["baseline"] < 1.1


def test_identical_models_in_two_packages_fail_significance(ws, tmp_path):
    same = production(tmp_path / "production", ws / "good_again")
    report = run(ws, tmp_path / "out", candidate="good", production=same)
    assert report["candidate"]["digest"] != report["production"]["digest"]
    assert (report["bootstrap"]["low"], report["bootstrap"]["high"]) == (0, 0)
    assert failing(report) == ["margin.absolute", "margin.relative", "significance"]


def test_the_production_model_as_candidate_fails(ws, tmp_path):
    good = production(tmp_path / "production", ws / "good", version="v1.2.0")
    report = run(ws, tmp_path / "out", candidate="good", production=good)
    assert report["verdict"] == "fail"
    assert report["reason"] == "the candidate is the production model (v1.2.0)"
    assert "new_model" in failing(report)


def test_the_stage_writes_byte_identical_files_on_rerun(ws, tmp_path):
    blind = production(tmp_path / "production", ws / "blind")
    run(ws, tmp_path / "one", production=blind)
    run(ws, tmp_path / "two", production=blind)
    first = folder_files(tmp_path / "one")
    assert sorted(first) == ["gate.json", "summary.md"]
    assert first == folder_files(tmp_path / "two")
    text = first["gate.json"].decode()
    assert str(tmp_path) not in text and str(ws) not in text  # no absolute paths
    summary = first["summary.md"].decode()
    assert summary.startswith("# Promotion gate: PASS\n")
    assert summary.index("| `floor.roc_auc` |") < summary.index("## Warnings")


# --- checks on made-up predictions -------------------------------------------------------


def made_up_sides(n: int = 20_000, seed: int = 3):
    """A candidate sharper than production everywhere except on ctv, where it is noise."""
    y, candidate, production_p = made_up(n, seed)
    rng = np.random.default_rng(seed + 1)
    device = rng.choice(["mobile", "desktop", "ctv"], n, p=[0.6, 0.3, 0.1])
    ctv = device == "ctv"
    candidate = np.where(ctv, rng.permutation(candidate), candidate)
    table = pa.table({"device": device, "position": rng.integers(1, 4, n)})
    settings = Evaluate(min_slice_rows=200)

    def side(digest, p):
        scored = evaluation.Scored(table, y, np.ones(n), p)
        return gate.Side(digest, scored, gate.measure(scored, settings, SLICES, 1000, 100.0))

    return side("c" * 64, candidate), side("p" * 64, production_p)


REF = {"version": "v1.0.0", "tag": "model#prod#1", "commit": "1234abcd", "digest": "p" * 64}
MADE_UP = Gate(**GATE)


def base_of(side: gate.Side) -> dict:
    """The trivial model, trained where the rows click as often as here."""
    return gate.baseline(side.scored, float(side.scored.y.mean()))


def test_a_regressed_slice_rejects_a_candidate_that_wins_overall():
    cand, prod = made_up_sides()
    report = gate.judge(cand, prod, REF, MADE_UP, psi={}, base=base_of(cand))
    assert cand.metrics["roc_auc"] > prod.metrics["roc_auc"] + 0.05
    assert report["verdict"] == "fail"
    assert failing(report) == ["slice.device=ctv.roc_auc"]
    assert report["reason"] == "failed 1 of 18 checks: slice.device=ctv.roc_auc"
    check = next(c for c in report["checks"] if c["name"] == "slice.device=ctv.roc_auc")
    assert check["baseline"] - check["value"] > 0.02 and "roc_auc in device=ctv" in check["reason"]
    # A looser slice tolerance lets it through.
    loose = MADE_UP.model_copy(update={"guards": Guards(slice_roc_auc=0.5)})
    assert gate.judge(cand, prod, REF, loose, psi={}, base=base_of(cand))["verdict"] == "pass"


def test_missing_nan_or_zero_production_figures_fail_with_a_reason():
    cand, prod = made_up_sides()
    broken = {**prod.metrics, "roc_auc": 0.0, "logloss": None, "ece": float("nan"), "latency": {}}
    del broken["size_bytes"]
    report = gate.judge(
        cand, gate.Side(prod.digest, prod.scored, broken), REF, MADE_UP, psi={}, base=base_of(cand)
    )
    checks = {c["name"]: c for c in report["checks"]}
    reasons = {
        "margin.relative": "roc_auc: production's value is 0, so a gain relative to it is "
        "undefined",
        "guard.logloss": "logloss: the production's value is missing",
        "guard.ece": "ece: the production's value is nan",
        "guard.latency_us": "estimated single-row latency (us): the production's value is missing",
        "guard.size_bytes": "model.onnx bytes: the production's value is missing",
    }
    for name, reason in reasons.items():
        assert not checks[name]["passed"] and checks[name]["reason"] == reason, name
        assert name in report["reason"]
    assert (
        checks["guard.ece"]["baseline"] is None and report["production"]["metrics"]["ece"] is None
    )
    text = json.dumps(report, allow_nan=False)  # raises on NaN or infinity
    assert "NaN" not in text and "Infinity" not in text

    # A NaN on the candidate's side is a failure too, never a pass.
    nan = gate.at_least("floor.roc_auc", "roc_auc", float("nan"), 0.7)
    assert (
        not nan.passed
        and nan.value is None
        and nan.reason == "roc_auc: the candidate's value is nan"
    )


# --- drift -------------------------------------------------------------------------------


def test_fractions_bin_numeric_and_categorical_columns_with_missing_last():
    numeric = {"kind": "numeric", "edges": [1.0, 2.0], "fractions": [0.4, 0.2, 0.2], "missing": 0.2}
    column = pa.chunked_array([[0.5, 1.0, 1.5, 3.0, None]])
    # Right-closed bins: 1.0 falls in (-inf, 1], with 0.5.
    np.testing.assert_allclose(drift.fractions(numeric, column, np.ones(5)), [0.4, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(
        drift.fractions(numeric, column, np.array([1, 1, 1, 1, 4.0])), [0.25, 0.125, 0.125, 0.5]
    )
    categorical = {
        "kind": "categorical",
        "values": ["a", "b", "__other__"],
        "fractions": [0.5, 0.3, 0.2],
        "missing": 0.0,
    }
    column = pa.chunked_array([["a", "c", None, "b", "a"]])
    np.testing.assert_allclose(
        drift.fractions(categorical, column, np.ones(5)), [0.4, 0.2, 0.2, 0.2]
    )
    np.testing.assert_allclose(drift.reference(categorical), [0.5, 0.3, 0.2, 0.0])


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one(tiny):
    same = np.array([0.25, 0.25, 0.5, 0.0])
    assert drift.psi(same, same) == 0
    # By hand: (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5).
    assert drift.psi([0.5, 0.5], [0.75, 0.25]) == pytest.approx(
        0.25 * math.log(1.5) + 0.25 * math.log(2)
    )
    # An empty bin counts as EPSILON: large, but finite.
    assert 0.2 < drift.psi([0.5, 0.5, 0.0], [0.4, 0.5, 0.1]) < math.inf

    expected, actual = traffic(20_000, 7, sample=False), traffic(20_000, 8, sample=False)
    schema = tiny[0]
    psi = drift.compare(expected, actual, schema, bins=10, top_categories=20)
    assert set(psi) == set(schema.names) and max(psi.values()) < 0.02, psi
    shifted = actual.set_column(
        actual.schema.get_field_index("floor_price"),
        "floor_price",
        pc.multiply(actual.column("floor_price"), 2.0),
    )
    psi = drift.compare(expected, shifted, schema, bins=10, top_categories=20)
    assert psi["floor_price"] > 0.2 and max(v for k, v in psi.items() if k != "floor_price") < 0.02


def test_drift_over_the_limit_is_a_warning_not_a_failure(ws, tmp_path):
    golden = pq.read_table(ws / "data/golden.parquet")
    index = golden.schema.get_field_index("floor_price")
    shifted = golden.set_column(index, "floor_price", pc.add(golden.column("floor_price"), 3.0))
    pq.write_table(shifted, tmp_path / "golden.parquet")
    nothing = production(tmp_path / "production", None)
    # Shifted prices move the model's metrics too: floors it cannot miss.
    params = write_params(
        tmp_path / "params.yaml",
        floors={"roc_auc": 0, "logloss_gain": -10, "ece_of_rate": 100, "size_bytes": 10**9},
    )
    report = run(
        ws, tmp_path / "out", production=nothing, golden=tmp_path / "golden.parquet", params=params
    )
    assert report["drift"]["over_limit"] == ["floor_price"]
    assert report["drift"]["psi"]["floor_price"] > 0.2 > report["drift"]["psi"]["position"]
    assert report["warnings"] == [
        f"drift: floor_price PSI {report['drift']['psi']['floor_price']:.6g} > 0.2 "
        f"(golden against validation)"
    ]
    assert "drift: floor_price" in (tmp_path / "out/summary.md").read_text()
    assert report["verdict"] == "pass"  # drift never fails the gate


# --- the latency measure -----------------------------------------------------------------


def test_nodes_per_row_counts_each_rows_path_through_every_tree(ws):
    golden = pq.read_table(ws / "data/golden.parquet")
    assert gate.nodes_per_row(package.load(ws / "stump"), golden) == 2.0  # root and leaf

    loaded = package.load(ws / "good")
    booster = package.load_booster((ws / "good/model.ubj").read_bytes(), "m")
    rows = np.linspace(0, golden.num_rows - 1, gate.LATENCY_ROWS).astype(int)
    leaves = booster.predict(
        xgb.DMatrix(loaded.schema.encode(golden.take(rows)), feature_names=booster.feature_names),
        pred_leaf=True,
    )
    # XGBoost's own dump gives each split's depth; a leaf is one below its parent.
    depths = [dump_depths(json.loads(tree)) for tree in booster.get_dump(dump_format="json")]
    expected = np.mean(
        [sum(depths[t][int(leaf)] + 1 for t, leaf in enumerate(row)) for row in leaves]
    )
    assert gate.nodes_per_row(loaded, golden) == pytest.approx(expected, rel=1e-12)
    assert 30 < expected <= 30 * 5


def dump_depths(node: dict, depth: int = 0) -> dict[int, int]:
    out = {node["nodeid"]: depth}
    for child in node.get("children", []):
        out |= dump_depths(child, depth + 1)
    return out


# --- config and bad inputs ---------------------------------------------------------------


def test_the_conf_group_is_valid_and_says_what_the_schema_defaults_say():
    raw = yaml.safe_load((ROOT / "conf/gate/default.yaml").read_text())
    assert Gate.model_validate(raw) == Gate()


def error_of(capsys, ws: Path, out: Path, **args) -> str:
    with pytest.raises(SystemExit) as exc:
        run(ws, out, **args)
    assert exc.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    return lines[0]


def test_bad_inputs_give_one_line_and_no_output(ws, tmp_path, capsys):
    out = tmp_path / "out"
    good = production(tmp_path / "good", ws / "good")
    nothing = production(tmp_path / "nothing", None)

    line = error_of(capsys, ws, out, candidate="missing", production=nothing)
    assert line == f"error: {ws / 'missing'}: no candidate package folder; run `dvc repro package`"

    (tmp_path / "noref").mkdir()
    assert f"{tmp_path / 'noref/ref.json'}: not found" in error_of(
        capsys, ws, out, production=tmp_path / "noref"
    )

    shutil.rmtree(production(tmp_path / "lost", ws / "good") / "package")
    assert error_of(capsys, ws, out, production=tmp_path / "lost") == (
        f"error: {tmp_path / 'lost/package'}: missing, but {tmp_path / 'lost/ref.json'} "
        f"names version v1.0.0"
    )

    other = production(tmp_path / "other", ws / "good")
    ref = json.loads((other / "ref.json").read_text())
    (other / "ref.json").write_text(json.dumps({**ref, "digest": "0" * 64}))
    line = error_of(capsys, ws, out, production=other)
    assert f"{other / 'ref.json'}: digest 000000000000… differs from the package's" in line

    (other / "ref.json").write_text(json.dumps({"version": "v1", "tag": None}))
    assert f"{other / 'ref.json'}: no 'commit' key" in error_of(capsys, ws, out, production=other)

    (good / "package/model.onnx").write_bytes(b"changed")
    assert "model.onnx: sha256 mismatch" in error_of(capsys, ws, out, production=good)

    golden = pq.read_table(ws / "data/golden.parquet").drop_columns(["floor_price"])
    pq.write_table(golden, tmp_path / "golden.parquet")
    line = error_of(capsys, ws, out, production=nothing, golden=tmp_path / "golden.parquet")
    assert (
        line == f"error: {tmp_path / 'golden.parquet'}: column 'floor_price' missing "
        "(the model needs it)"
    )

    for change, message in (
        (
            {"margin": {"absolute": -1}},
            "gate.margin.absolute: Input should be greater than or equal to 0 (got -1)",
        ),
        ({"primary": "accuracy"}, "gate.primary: Input should be 'roc_auc' or 'logloss'"),
        ({"guards": {"latency": 2}}, "gate.guards.latency: Extra inputs are not permitted"),
        (
            {"bootstrap": {"resamples": 10}},
            "gate.bootstrap.resamples: Input should be greater than or equal to 100",
        ),
    ):
        params = write_params(tmp_path / "bad.yaml", **change)
        assert message in error_of(capsys, ws, out, production=nothing, params=params)


def test_floors_hold_against_the_trivial_model_whatever_the_positive_rate():
    """A good model on data that is 30% positive passes (its log loss is far above the
    ad data's 0.25); the trivial model itself, and a model no better, do not."""
    rng = np.random.default_rng(5)
    signal = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(signal - 1.0)))).astype(np.int64)
    rate = float(y.mean())
    settings = Gate(
        **{
            **GATE,
            "floors": {
                "roc_auc": 0.55,
                "logloss_gain": 0.02,
                "ece_of_rate": 0.25,
                "size_bytes": 10**6,
            },
        }
    )

    def checks(p):
        scored = evaluation.Scored(None, y, np.ones(len(y)), p)
        measured = {**evaluation.overall(scored, 10), "size_bytes": 1000}
        base = gate.baseline(scored, rate)
        return base, {c.name: c.passed for c in gate.floor_checks(measured, base, settings)}

    base, good = checks(1 / (1 + np.exp(-(signal - 1.0))))
    assert 0.25 < rate < 0.35 and base["logloss"] > 0.5 and base["roc_auc"] == 0.5
    assert all(good.values()), good
    _, trivial = checks(np.full(len(y), rate))
    assert not trivial["floor.roc_auc"] and not trivial["floor.logloss"]
    _, overconfident = checks(np.clip(1 / (1 + np.exp(-3 * (signal - 1.0))) + 0.2, 0, 0.99))
    assert not overconfident["floor.ece"]
