"""The promotion gate: may the candidate package replace the production one?

Both packages score the same golden rows through ONNX Runtime, as serving would, and the
gate writes a verdict with every check that led to it. The verdict is data: the stage
succeeds either way and `publish` enforces it.

The checks, in the order gate.json lists them:
- floors, always: ROC AUC, log loss and calibration error held against a trivial model
  on the same rows (the training positive rate as every prediction, `baseline` in the
  report), and the model.onnx size. With nothing in production these alone decide.
- new_model: a candidate with the production package's digest is the production model.
- margin.absolute, margin.relative: the primary metric's gain over production.
- significance: the lower end of a paired bootstrap interval of that gain is above 0,
  so the gain is not the luck of which rows are in the golden set (ctrpipe/release/bootstrap.py).
- guards: log loss and calibration error may not rise past a tolerance; ROC AUC may not
  drop past one in any slice value both models are scored on; the single-row cost and the
  size may not grow past a ratio.

Single-row cost is measured, not timed: `latency.nodes_per_row` is the mean number of
tree nodes one row visits (per tree, the splits on its path plus the leaf it reaches,
summed over the trees), from XGBoost's leaf indices (`pred_leaf`) on up to LATENCY_ROWS
evenly spaced golden rows and each tree's node depths. ONNX Runtime walks the same trees:
bench/gate.py measures its single-row time at about 5 us per call plus 7 ns per node
visited, on a straight line through four models of 120 to 2,400 nodes per row. The guard
compares that line's estimate (`gate.latency`: fixed_us + per_node_ns x nodes), so the
fixed per-call part is counted once for each model, as in a real timing. A wall-clock
time would change from run to run and break byte-identical reports.

Drift is a warning, never a failure: the PSI of each candidate feature, golden against
validation (ctrpipe/model/drift.py), says whether the golden rows still look like recent
traffic; a large one makes every other figure here less telling.

A check that cannot be computed (a figure missing, NaN, or a zero baseline for a ratio)
fails and says why: a gate never passes on a number it could not read.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import xgboost as xgb

from ctrpipe import fileio
from ctrpipe.errors import DataError
from ctrpipe.model import drift, evaluation, metrics, package
from ctrpipe.model.evaluation import Scored
from ctrpipe.model.settings import Evaluate
from ctrpipe.release import bootstrap
from ctrpipe.release.settings import Gate

FORMAT = 1
REF = "ref.json"
REF_KEYS = ("version", "tag", "commit", "digest")
PACKAGE = "package"  # the production package's folder, beside ref.json
LATENCY_ROWS = 10_000
HIGHER_IS_BETTER = {"roc_auc": True, "logloss": False}


# --- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Production:
    ref: dict  # ref.json: version, tag, commit, digest (all None: nothing in production)
    package: package.Loaded | None


def open_candidate(path: str | Path) -> package.Loaded:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no candidate package folder; run `dvc repro package`")
    return package.load(path)


def open_production(folder: str | Path) -> Production:
    """ref.json and, when it names a version, the package it names, verified."""
    folder = Path(folder)
    ref = read_ref(folder / REF)
    if ref["version"] is None:
        return Production(ref, None)
    path = folder / PACKAGE
    if not path.is_dir():
        raise DataError(f"{path}: missing, but {folder / REF} names version {ref['version']}")
    loaded = package.load(path)
    if loaded.digest != ref["digest"]:
        raise DataError(
            f"{folder / REF}: digest {ref['digest'][:12]}… differs from the "
            f"package's {loaded.digest[:12]}… ({path})"
        )
    return Production(ref, loaded)


def read_ref(path: Path) -> dict:
    try:
        ref = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: not found; the production folder needs one, with "
            f'"version": null when nothing is in production'
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(ref, dict):
        raise DataError(f"{path}: expected an object with keys {', '.join(REF_KEYS)}")
    for key in REF_KEYS:
        if key not in ref:
            raise DataError(f"{path}: no '{key}' key (expected {', '.join(REF_KEYS)})")
        if ref[key] is not None and not isinstance(ref[key], str):
            raise DataError(f"{path}: '{key}' must be a string or null (got {ref[key]!r})")
    if ref["version"] is not None and ref["digest"] is None:
        raise DataError(f"{path}: names version {ref['version']} but no digest")
    return {key: ref[key] for key in REF_KEYS}


def read_golden(path: str | Path, models: list[package.Loaded], slices: list[str]) -> pa.Table:
    """The golden rows with every column any of the models needs, read once.

    Each model encodes the rows with its own schema, and a retrained model may use other
    features than production, so the read asks for the union of their columns."""
    first = models[0].schema
    for model in models[1:]:
        if (model.schema.label, model.schema.weight) != (first.label, first.weight):
            raise DataError(
                f"{model.path}: label and weight columns differ from "
                f"{models[0].path}'s; the models cannot be compared"
            )
    names = list(dict.fromkeys(name for model in models for name in model.schema.names))
    # Only read_split's list of columns: this schema never encodes a row.
    columns = dataclasses.replace(first, numeric=names, categorical={})
    return evaluation.read_split(path, columns, slices)


# --- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One model on the golden rows: what the checks read."""

    digest: str
    scored: Scored
    metrics: dict


def side(
    model: package.Loaded, golden: pa.Table, settings: Evaluate, slices: list[str], source: str
) -> Side:
    scored = score(model, golden, source)
    return Side(
        model.digest,
        scored,
        measure(
            scored,
            settings,
            slices,
            size_bytes=(model.path / "model.onnx").stat().st_size,
            nodes=nodes_per_row(model, golden, source),
        ),
    )


def score(model: package.Loaded, table: pa.Table, source: str) -> Scored:
    """Click probabilities from the package's ONNX model, as serving computes them."""
    p = model.predict(model.schema.encode(table, source))
    y = table.column(model.schema.label).to_numpy().astype(np.int64)
    w = table.column(model.schema.weight).to_numpy().astype(np.float64)
    return Scored(table, y, w, p.astype(np.float64))


def measure(
    s: Scored, settings: Evaluate, slices: list[str], size_bytes: int, nodes: float
) -> dict:
    """The evaluate stage's overall metrics and slices, plus size and single-row cost."""
    out = evaluation.overall(s, settings.calibration_bins)
    out["slices"] = {c: evaluation.by_slice(s, c, settings.min_slice_rows) for c in slices}
    out["size_bytes"] = int(size_bytes)
    out["latency"] = {
        "nodes_per_row": round(float(nodes), metrics.DIGITS),
        "rows": min(len(s.y), LATENCY_ROWS),
    }
    return out


def nodes_per_row(model: package.Loaded, table: pa.Table, source: str = "golden") -> float:
    """Mean tree nodes visited per row (see the module docstring), from model.ubj."""
    booster = package.load_booster(
        (model.path / "model.ubj").read_bytes(), str(model.path / "model.ubj")
    )
    rows = np.linspace(0, table.num_rows - 1, min(table.num_rows, LATENCY_ROWS)).astype(int)
    x = model.schema.encode(table.take(rows), source)
    leaves = (
        booster.predict(
            xgb.DMatrix(x, feature_names=booster.feature_names, nthread=1), pred_leaf=True
        )
        .astype(np.int64)
        .reshape(len(rows), -1)
    )
    depth = depth_table(booster)
    visited = depth[np.arange(depth.shape[0]), leaves] + 1  # + 1: the leaf itself
    return float(visited.sum(axis=1).mean())


def depth_table(booster: xgb.Booster) -> np.ndarray:
    """(trees, most nodes in a tree): the depth of each node id in each tree, root 0."""
    trained = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    if trained["name"] == "dart":  # dart keeps its trees one level further down
        trained = trained["gbtree"]
    trees = trained["model"]["trees"]
    out = np.zeros((len(trees), max(len(t["left_children"]) for t in trees)), np.int64)
    for i, tree in enumerate(trees):
        children = np.array([tree["left_children"], tree["right_children"]])
        level, depth = np.array([0]), 0
        while level.size:  # one level of the tree at a time; a leaf's children are -1
            out[i, level] = depth
            level = children[:, level].ravel()
            level, depth = level[level >= 0], depth + 1
    return out


# --- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    value: float | str | None  # the candidate's figure
    baseline: float | str | None  # production's figure (None for a floor)
    threshold: float | None
    passed: bool
    reason: str


def baseline(s: Scored, label_rate: float) -> dict:
    """What a trivial model scores on the golden rows: the training positive rate as
    every prediction."""
    rate = float(np.average(s.y, weights=s.w))
    p = np.full(len(s.y), min(max(label_rate, 1e-6), 1 - 1e-6))
    return metrics.rounded(
        {
            "prediction": label_rate,
            "positive_rate": rate,
            "roc_auc": 0.5,
            "logloss": metrics.logloss(s.y, p, s.w),
            "ece": abs(rate - label_rate),
        }
    )


def floor_checks(m: dict, base: dict, settings: Gate) -> list[Check]:
    """The floors against the trivial model's figures (and absolute caps, if set)."""
    floors = settings.floors
    logloss = capped(base["logloss"] * (1 - floors.logloss_gain), floors.logloss)
    ece = capped(floors.ece_of_rate * base["positive_rate"], floors.ece)
    return [
        at_least("floor.roc_auc", "roc_auc", m.get("roc_auc"), floors.roc_auc),
        at_most("floor.logloss", "logloss", m.get("logloss"), logloss),
        at_most("floor.ece", "ece", m.get("ece"), ece),
        at_most("floor.size_bytes", "model.onnx bytes", m.get("size_bytes"), floors.size_bytes),
    ]


def capped(limit: float, cap: float | None) -> float:
    return limit if cap is None else min(limit, cap)


def at_least(name: str, what: str, value, limit: float) -> Check:
    if (problem := unusable(candidate=value)) is not None:
        return failed(name, value, None, limit, f"{what}: {problem}")
    ok = value >= limit
    return Check(
        name,
        value,
        None,
        limit,
        ok,
        f"{what} {num(value)} {'>=' if ok else '<'} floor {num(limit)}",
    )


def at_most(name: str, what: str, value, limit: float) -> Check:
    if (problem := unusable(candidate=value)) is not None:
        return failed(name, value, None, limit, f"{what}: {problem}")
    ok = value <= limit
    return Check(
        name,
        value,
        None,
        limit,
        ok,
        f"{what} {num(value)} {'<=' if ok else '>'} floor {num(limit)}",
    )


def production_checks(
    c: dict, p: dict, interval: bootstrap.Interval | None, settings: Gate
) -> list[Check]:
    """Everything that compares the candidate's figures `c` with production's `p`."""
    primary, guards = settings.primary, settings.guards
    checks = [
        margin_absolute(primary, c.get(primary), p.get(primary), settings.margin.absolute),
        margin_relative(primary, c.get(primary), p.get(primary), settings.margin.relative),
        significance(interval, settings.bootstrap.confidence),
        increase("guard.logloss", "logloss", c.get("logloss"), p.get("logloss"), guards.logloss),
        increase("guard.ece", "ece", c.get("ece"), p.get("ece"), guards.ece),
    ]
    checks += slice_checks(c.get("slices", {}), p.get("slices", {}), guards.slice_roc_auc)
    checks += [
        ratio(
            "guard.latency_us",
            "estimated single-row latency (us)",
            latency_us(c, settings),
            latency_us(p, settings),
            guards.latency_ratio,
        ),
        ratio(
            "guard.size_bytes",
            "model.onnx bytes",
            c.get("size_bytes"),
            p.get("size_bytes"),
            guards.size_ratio,
        ),
    ]
    return checks


def latency_us(m: dict, settings: Gate) -> float | None:
    """Estimated single-row ONNX latency from the nodes a row visits (gate.latency)."""
    nodes = m.get("latency", {}).get("nodes_per_row")
    if nodes is None:
        return None
    return settings.latency.fixed_us + settings.latency.per_node_ns * nodes / 1000


def gain(metric: str, candidate: float, production: float) -> float:
    """How much better the candidate is, in the metric's units, whatever its direction."""
    diff = candidate - production
    return diff if HIGHER_IS_BETTER[metric] else -diff


def margin_absolute(metric: str, c, p, margin: float) -> Check:
    name = "margin.absolute"
    if (problem := unusable(candidate=c, production=p)) is not None:
        return failed(name, c, p, margin, f"{metric}: {problem}")
    g = gain(metric, c, p)
    ok = g >= margin
    return Check(
        name, c, p, margin, ok, f"{metric} gain {num(g)} {'>=' if ok else '<'} {num(margin)}"
    )


def margin_relative(metric: str, c, p, margin: float) -> Check:
    name = "margin.relative"
    if (problem := unusable(candidate=c, production=p)) is not None:
        return failed(name, c, p, margin, f"{metric}: {problem}")
    if p == 0:
        return failed(
            name,
            c,
            p,
            margin,
            f"{metric}: production's value is 0, so a gain relative to it is undefined",
        )
    share = gain(metric, c, p) / abs(p)
    ok = share >= margin
    return Check(
        name,
        c,
        p,
        margin,
        ok,
        f"{metric} gain {share:.3%} of production's {num(p)} {'>=' if ok else '<'} {margin:.3%}",
    )


def significance(interval: bootstrap.Interval | None, confidence: float) -> Check:
    name = "significance"
    if interval is None or interval.low is None:
        return failed(
            name,
            None,
            None,
            0.0,
            "the bootstrap interval of the gain is undefined (no resample had both classes)",
        )
    low = round(interval.low, metrics.DIGITS)
    ok = low > 0
    span = (
        f"{confidence:.0%} interval of the {interval.metric} gain "
        f"[{num(interval.low)}, {num(interval.high)}]"
    )
    return Check(name, low, None, 0.0, ok, f"{span}: lower end {'>' if ok else '<='} 0")


def increase(name: str, what: str, c, p, tolerance: float) -> Check:
    if (problem := unusable(candidate=c, production=p)) is not None:
        return failed(name, c, p, tolerance, f"{what}: {problem}")
    up = c - p
    ok = up <= tolerance
    return Check(
        name,
        c,
        p,
        tolerance,
        ok,
        f"{what} {num(p)} -> {num(c)}: up {num(up)} {'<=' if ok else '>'} {num(tolerance)}",
    )


def slice_checks(c: dict, p: dict, tolerance: float) -> list[Check]:
    """One check per slice value both models were scored on (too small ones were not)."""
    checks = []
    for column, values in c.items():
        for value, figures in values.items():
            if value == evaluation.TOO_SMALL or value not in p.get(column, {}):
                continue
            name = f"slice.{column}={value}.roc_auc"
            cand, prod = figures.get("roc_auc"), p[column][value].get("roc_auc")
            if (problem := unusable(candidate=cand, production=prod)) is not None:
                checks.append(failed(name, cand, prod, tolerance, f"roc_auc: {problem}"))
                continue
            down = prod - cand
            ok = down <= tolerance
            checks.append(
                Check(
                    name,
                    cand,
                    prod,
                    tolerance,
                    ok,
                    f"roc_auc in {column}={value} {num(prod)} -> {num(cand)}: "
                    f"down {num(down)} {'<=' if ok else '>'} {num(tolerance)}",
                )
            )
    return checks


def ratio(name: str, what: str, c, p, limit: float) -> Check:
    if (problem := unusable(candidate=c, production=p)) is not None:
        return failed(name, c, p, limit, f"{what}: {problem}")
    if p <= 0:
        return failed(
            name, c, p, limit, f"{what}: production's is {num(p)}, so a ratio to it is undefined"
        )
    r = c / p
    ok = r <= limit
    return Check(
        name,
        c,
        p,
        limit,
        ok,
        f"{what} {num(c)} vs {num(p)}: {r:.3f}x {'<=' if ok else '>'} {num(limit)}x",
    )


def new_model(candidate: str, production: str, version: str) -> Check:
    same = candidate == production
    reason = (
        f"the candidate is the production model ({version})"
        if same
        else f"the candidate differs from the production model ({version})"
    )
    return Check("new_model", candidate, production, None, not same, reason)


def unusable(**figures) -> str | None:
    """Why a figure cannot be compared (missing, not a number, NaN), or None."""
    for who, x in figures.items():
        if x is None:
            return f"the {who}'s value is missing"
        if not isinstance(x, int | float) or isinstance(x, bool):
            return f"the {who}'s value {x!r} is not a number"
        if not math.isfinite(x):
            return f"the {who}'s value is {x}"
    return None


def failed(name, value, baseline, threshold, reason) -> Check:
    return Check(name, finite(value), finite(baseline), threshold, False, reason)


def finite(x):
    """A figure as the report may hold it: NaN and infinities become null (JSON has none)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x if isinstance(x, int | float | str) and not isinstance(x, bool) else None


def decide(checks: list[Check]) -> tuple[str, str]:
    """The verdict and its one-line reason, naming the checks that failed."""
    same = [c for c in checks if c.name == "new_model" and not c.passed]
    if same:
        return "fail", same[0].reason
    failing = [c.name for c in checks if not c.passed]
    if failing:
        return "fail", f"failed {len(failing)} of {len(checks)} checks: {', '.join(failing)}"
    return "pass", f"all {len(checks)} checks passed"


# --- the whole gate ----------------------------------------------------------------------


def run(
    candidate: package.Loaded,
    production: Production,
    golden: pa.Table,
    validation: pa.Table,
    settings: Gate,
    evaluate: Evaluate,
    slices: list[str],
    source: str = "golden",
) -> dict:
    """Score, check and decide; gate.json's content."""
    cand = side(candidate, golden, evaluate, slices, source)
    prod = (
        None
        if production.package is None
        else side(production.package, golden, evaluate, slices, source)
    )
    psi = drift.compare(
        validation, golden, candidate.schema, settings.drift.bins, settings.drift.top_categories
    )
    base = baseline(cand.scored, candidate.label_rate)
    return judge(cand, prod, production.ref, settings, psi, base)


def judge(
    cand: Side, prod: Side | None, ref: dict, settings: Gate, psi: dict[str, float], base: dict
) -> dict:
    """The checks, the verdict and the report, from both sides' figures and the trivial
    model's (`base`)."""
    checks = floor_checks(cand.metrics, base, settings)
    interval = None
    if prod is not None:
        b = settings.bootstrap
        interval = bootstrap.paired_gain(
            settings.primary,
            cand.scored.y,
            cand.scored.w,
            cand.scored.p,
            prod.scored.p,
            b.resamples,
            b.confidence,
            b.seed,
        )
        checks += [
            new_model(cand.digest, prod.digest, ref["version"]),
            *production_checks(cand.metrics, prod.metrics, interval, settings),
        ]
    verdict, reason = decide(checks)
    drifted = drift_section(psi, settings)
    return clean(
        {
            "format": FORMAT,
            "verdict": verdict,
            "reason": reason,
            "primary": settings.primary,
            "candidate": {"digest": cand.digest, "metrics": cand.metrics},
            "baseline": base,
            "production": {
                **(ref if prod is not None else dict.fromkeys(REF_KEYS)),
                "metrics": None if prod is None else prod.metrics,
            },
            "checks": [dataclasses.asdict(c) for c in checks],
            "bootstrap": None if interval is None else interval.as_dict(),
            "drift": drifted,
            "warnings": [
                f"drift: {name} PSI {num(drifted['psi'][name])} > "
                f"{num(settings.drift.psi_limit)} (golden against validation)"
                for name in drifted["over_limit"]
            ],
        }
    )


def drift_section(psi: dict[str, float], settings: Gate) -> dict:
    limit = settings.drift.psi_limit
    over = sorted(
        (
            name
            for name, value in psi.items()
            if value > limit and name not in settings.drift.ignore
        ),
        key=lambda name: (-psi[name], name),
    )
    return {
        "reference": "validation",
        "bins": settings.drift.bins,
        "top_categories": settings.drift.top_categories,
        "psi_limit": limit,
        "ignored": sorted(settings.drift.ignore),
        "psi": psi,
        "over_limit": over,
    }


def clean(obj):
    """Every float rounded to metrics.DIGITS, NaN as null: stable, valid JSON."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, metrics.DIGITS) if math.isfinite(obj) else None
    return obj


# --- the report --------------------------------------------------------------------------


def write(report_path: str | Path, summary_path: str | Path, report: dict) -> None:
    """The report as JSON and as Markdown; each lands whole or not at all."""
    fileio.write_text(report_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    fileio.write_text(summary_path, summary(report))


def headline(report: dict) -> str:
    """One line for the stage's output: the verdict, what was compared, and on a failure
    the checks that failed."""
    line = f"{report['verdict']} — {comparison(report)}"
    return line if report["verdict"] == "pass" else f"{line}; {report['reason']}"


def comparison(report: dict) -> str:
    """What was compared on how many rows: the primary metric and its interval."""
    primary, c, prod = report["primary"], report["candidate"]["metrics"], report["production"]
    rows = f"on {c['rows']} golden rows"
    if prod["metrics"] is None:
        return (
            f"candidate (nothing in production) {rows}: {primary} "
            f"{fmt(c.get(primary))}, floors only"
        )
    b = report["bootstrap"]
    return (
        f"candidate vs {prod['version']} {rows}: {primary} {fmt(c.get(primary))} vs "
        f"{fmt(prod['metrics'].get(primary))} ({b['confidence']:.0%} CI of the gain "
        f"[{fmt(b['low'])}, {fmt(b['high'])}])"
    )


def summary(report: dict) -> str:
    """summary.md: the verdict first, then every check, then the warnings."""
    prod = report["production"]
    against = (
        f"production {prod['version']} (tag `{prod['tag']}`, package `{prod['digest'][:12]}`)"
        if prod["metrics"] is not None
        else "nothing in production"
    )
    lines = [
        f"# Promotion gate: {report['verdict'].upper()}",
        "",
        f"**{report['reason']}**",
        "",
        f"Candidate package `{report['candidate']['digest'][:12]}` against {against}.",
        "",
        f"{sentence(comparison(report))}.",
        "",
        "| check | candidate | production | threshold | passed | reason |",
        "| --- | ---: | ---: | ---: | :---: | --- |",
    ]
    for c in report["checks"]:
        cells = [
            f"`{c['name']}`",
            *(cell(c[k]) for k in ("value", "baseline", "threshold")),
            "yes" if c["passed"] else "**no**",
            c["reason"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    base = report["baseline"]
    lines += [
        "",
        f"The floors are held against a trivial model, the training positive rate "
        f"({cell(base['prediction'])}) as every prediction: on the same golden rows "
        f"(positive rate {cell(base['positive_rate'])}) it scores log loss "
        f"{cell(base['logloss'])}, calibration error {cell(base['ece'])} and ROC AUC 0.5.",
    ]
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report["warnings"]] or ["None."]
    return "\n".join(lines) + "\n"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def cell(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return f"`{x[:12]}`"  # a digest
    return num(x)


def num(x) -> str:
    """A figure for a reason or a table: integers with separators, floats to 6 digits."""
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:.6g}"


def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"
