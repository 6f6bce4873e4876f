"""The pull-request report: one markdown page and its PNG plots, from a reproduced workspace.

CI runs `dvc repro`, then `python -m ctrpipe report --base origin/main --log repro.log
--out reports/pr`, and posts `report.md` as the pull request's one comment (found again
by the marker on its first line). In order, the page has:

1. the marker and a title;
2. the gate's verdict from reports/gate/gate.json: what was compared, every check, and
   the warnings;
3. the params that differ from the base revision (DVC's `params diff`);
4. the overall metrics of validation and golden (reports/evaluate/metrics.json) and the
   data metrics (reports/generate/data.json) against the base revision, then against the commit
   of the model in production (DVC's `metrics diff`, unchanged ones included);
5. the golden split's slices, with the ROC AUC change against the base;
6. the quarantine counts per table and reason (reports/generate/data.json);
7. the stage timings from the `dvc repro` log, when one is given;
8. the performance budget, from `bench/budget.py --json` run beside the repro, when a
   file is given (`--budget`): each figure on the base and on the pull request, the ratio,
   its line in bench/budget.yaml and pass or fail;
9. the plots, written to `<out>/plots/` and linked relatively, or under `--image-base`.

The same inputs give the same bytes: fixed orders, fixed number formats (4 decimals for
metrics, signed deltas), no times and no absolute paths. Everything is read and computed
before anything is written, and the folder is moved into place at the end.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ctrpipe import fileio, paths
from ctrpipe.errors import DataError, PipelineError
from ctrpipe.release import registry
from ctrpipe.reporting import charts, plots

MARKER = "<!-- ctrpipe-report -->"
GATE = paths.GATE_REPORT
METRICS = paths.EVALUATE_METRICS
DATA = paths.DATA_METRICS
TRIALS = paths.TRIALS
SKEW = paths.SKEW
PLOT_DIR = paths.EVALUATE_PLOTS
IMPORTANCE = f"{PLOT_DIR}/feature_importance.json"
SPLITS = ("validation", "golden")
SHOWN = ("params.yaml", METRICS, DATA)  # the files whose diffs the report shows
SLICE_SPLIT = "golden"
CURVES = {
    "roc": ("fpr", "tpr"),
    "precision_recall": ("recall", "precision"),
    "calibration": ("mean_predicted", "observed_rate"),
}
TOO_SMALL = "too_small"  # evaluation.TOO_SMALL, without importing the model stack
DASH = "–"


class ReportError(PipelineError):
    """The report cannot be made: an unknown base revision, a repository DVC cannot read."""


@dataclass(frozen=True)
class Inputs:
    gate: dict
    metrics: dict
    data: dict
    curves: dict[str, dict[str, list[dict]]]
    importance: list[dict]
    trials: list[dict]
    skew: dict | None  # None: the commit predates the skew stage


@dataclass(frozen=True)
class StageRun:
    name: str
    status: str  # "ran", "unchanged", "cached" (restored from the run cache) or "failed"
    seconds: float | None


@dataclass(frozen=True)
class Revision:
    label: str  # what the reader sees: the name given, or the version in production
    commit: str


def write(
    root: str | Path,
    base: str,
    out: str | Path,
    log: str | Path | None = None,
    image_base: str | None = None,
    budget: str | Path | None = None,
) -> Path:
    """Build the report of the workspace at `root` against `base` into the folder `out`
    (report.md and plots/*.png); the folder."""
    root, out = Path(root), Path(out)
    inputs = read_inputs(root)
    stages = None if log is None else read_log(log)
    figures = None if budget is None else read_budget(budget)
    base_rev = Revision(base, resolve(root, base))
    current = registry.production(root)
    prod_rev = None if current is None else Revision(current.version, current.commit)
    params, against_base, against_prod = dvc_diffs(root, base_rev, prod_rev)
    text = markdown(
        inputs,
        base_rev,
        current,
        params,
        against_base,
        against_prod,
        stages,
        image_prefix(image_base),
        figures,
    )
    with fileio.atomic_path(out) as tmp:
        (tmp / "plots").mkdir(parents=True)
        plots.render(tmp / "plots", inputs.curves, inputs.importance, inputs.trials)
        (tmp / "report.md").write_text(text, encoding="utf-8")
    return out


# --- inputs ------------------------------------------------------------------------------


def read_inputs(root: Path) -> Inputs:
    gate = read_json(root, GATE, dict)
    for key in ("verdict", "reason", "candidate", "production", "checks", "warnings"):
        if key not in gate:
            raise DataError(f"{GATE}: no '{key}' field; is it the gate stage's output?")
    metrics = read_json(root, METRICS, dict)
    for split in SPLITS:
        if not isinstance(metrics.get(split), dict):
            raise DataError(f"{METRICS}: no '{split}' metrics")
    data = read_json(root, DATA, dict)
    tables = data.get("tables")
    if not isinstance(tables, dict):
        raise DataError(f"{DATA}: no 'tables' counts")
    for name, counts in tables.items():
        if not isinstance(counts, dict) or not all(k in counts for k in ("records", "bad")):
            raise DataError(f"{DATA}: table '{name}' lacks 'records' or 'bad'")
    curves = {
        kind: {split: read_rows(root, f"{PLOT_DIR}/{kind}/{split}.json", keys) for split in SPLITS}
        for kind, keys in CURVES.items()
    }
    importance = read_rows(root, IMPORTANCE, ("gain",))
    if not all(isinstance(r.get("feature"), str) for r in importance):
        raise DataError(f"{IMPORTANCE}: a row without a 'feature' name")
    skew = read_json(root, SKEW, dict) if (root / SKEW).exists() else None
    return Inputs(gate, metrics, data, curves, importance, read_trials(root), skew)


def read_json(root: Path, rel: str, kind: type):
    return json_file(root / rel, rel, kind, "; run `dvc repro` first")


def json_file(path: Path, name: str, kind: type, missing: str = ""):
    """The JSON `kind` (dict or list) in `path`; a DataError starting with `name` if it is
    absent (then ending in `missing`), unreadable, not JSON or not a `kind`."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{name}: no such file{missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read it ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, kind):
        raise DataError(f"{name}: expected a JSON {'object' if kind is dict else 'array'}")
    return obj


def read_rows(root: Path, rel: str, numeric: tuple[str, ...]) -> list[dict]:
    """A plot table: a list of objects whose `numeric` fields are numbers."""
    rows = read_json(root, rel, list)
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(is_number(row.get(k)) for k in numeric):
            raise DataError(f"{rel}: row {i} lacks a number in {', '.join(numeric)}")
    return rows


def read_trials(root: Path) -> list[dict]:
    path = root / TRIALS
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(f"{TRIALS}: no such file; run `dvc repro` first") from None
    trials = []
    for i, row in enumerate(rows, start=2):
        try:
            value = row["value"]
            trials.append(
                {
                    "number": int(row["number"]),
                    "state": row["state"],
                    "value": float(value) if value not in (None, "") else None,
                }
            )
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{TRIALS}: line {i} lacks a number, state or value") from None
    return trials


def resolve(root: Path, base: str) -> str:
    """The commit `base` names, or a one-line error naming it."""
    registry.git(root, "rev-parse", "--git-dir")  # not a git repository: git says so
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if base.startswith("-") or proc.returncode != 0:
        raise ReportError(
            f"--base: revision '{base}' is not a commit in this repository "
            f"(for origin/main in CI, fetch it first)"
        )
    return proc.stdout.strip()


def dvc_diffs(root: Path, base: Revision, prod: Revision | None):
    """DVC's params diff against the base, and its metrics diffs (unchanged included)
    against the base and against production's commit."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise ReportError(f"{root}: not a DVC repository") from None
    with repo:
        params = repo.params.diff(a_rev=base.commit)
        against_base = repo.metrics.diff(a_rev=base.commit, all=True)
        against_prod = None if prod is None else repo.metrics.diff(a_rev=prod.commit, all=True)
    return params, against_base, against_prod


def read_log(log: str | Path) -> list[StageRun]:
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"--log {log}: no such file") from None
    except OSError as exc:
        raise DataError(f"--log {log}: cannot read it ({exc.strerror or exc})") from None
    return parse_log(text)


BUDGET_SHOWN = ("REF", "HEAD", "ratio", "line")  # bench/budget.py's texts of a figure


def read_budget(path: str | Path) -> dict:
    """bench/budget.py's --json file, checked for what the budget section shows."""
    budget = json_file(Path(path), f"--budget {path}", dict)
    if not is_budget(budget):
        raise DataError(
            f"--budget {path}: not bench/budget.py's --json output (it needs sides REF and "
            "HEAD with a commit, and figures with a number, label, result and shown texts)"
        )
    return budget


def is_budget(budget) -> bool:
    try:
        commits = [budget["sides"][side]["commit"] for side in ("REF", "HEAD")]
        figures = list(budget["figures"].values())
        return all(isinstance(c, str) for c in commits) and all(
            isinstance(f["number"], int)
            and isinstance(f["label"], str)
            and isinstance(f["result"], str)
            and all(isinstance(f["shown"][name], str) for name in BUDGET_SHOWN)
            for f in figures
        )
    except (KeyError, TypeError, AttributeError):
        return False


GATE_STAGE = "gate"
RUNNING = re.compile(r"^Running stage '(?P<name>[^']+)':")
SKIPPED = re.compile(r"^Stage '(?P<name>[^']+)' didn't change, skipping")
CACHED = re.compile(r"^Stage '(?P<name>[^']+)' is cached - skipping run")
FAILED = re.compile(r"^ERROR: failed to reproduce '(?P<name>[^']+)'")
LOCK = re.compile(r"^Updating lock file ")
TOTAL = re.compile(r"\btotal (\d+(?:\.\d+)?) s\b")
ENDS_IN = re.compile(r"\bin (\d+(?:\.\d+)?) s$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def parse_log(text: str) -> list[StageRun]:
    """Each stage the `dvc repro` log names, in the order it first names them.

    A stage DVC ran takes its time from the last line of its own output that contains
    `total N s` or ends with `in N s` (every stage prints one such line last)."""
    runs: dict[str, StageRun] = {}
    current: str | None = None
    for raw in re.split(r"\r\n|\r|\n", ANSI.sub("", text)):
        line = raw.strip()
        if m := RUNNING.match(line):
            current = m["name"]
            runs[current] = StageRun(current, "ran", None)
        elif m := SKIPPED.match(line) or CACHED.match(line):
            current = None
            runs[m["name"]] = StageRun(
                m["name"], "unchanged" if SKIPPED.match(line) else "cached", None
            )
        elif m := FAILED.match(line):
            current = None
            if m["name"] in runs:
                runs[m["name"]] = StageRun(m["name"], "failed", runs[m["name"]].seconds)
        elif LOCK.match(line):
            current = None
        elif current is not None and (m := TOTAL.search(line) or ENDS_IN.search(line)):
            runs[current] = StageRun(current, "ran", float(m[1]))
    return list(runs.values())


# --- the page ----------------------------------------------------------------------------


def markdown(
    inputs: Inputs,
    base: Revision,
    current,
    params: dict,
    against_base: dict,
    against_prod: dict | None,
    stages: list[StageRun] | None,
    prefix: str,
    budget: dict | None = None,
) -> str:
    gate = inputs.gate
    on_base = f"base `{base.label}` (`{base.commit[:8]}`)"
    prod_text = (
        f"production {current.version} (`{current.tag}`, commit `{current.commit[:8]}`)"
        if current
        else "nothing in production"
    )
    lines = [
        MARKER,
        "# ctrpipe pull-request report",
        "",
        f"Gate **{str(gate['verdict']).upper()}**. The workspace against {on_base} "
        f"and {prod_text}.",
        "",
    ]
    if stages is not None and GATE_STAGE not in {s.name for s in stages}:
        lines += [
            "The gate below is the one committed on this branch: this run's `dvc repro` "
            "did not reach it (a fork's pull request stops before it, with no "
            "credentials to fetch production's package).",
            "",
        ]
    lines += gate_section(gate)
    lines += params_section(params, on_base)
    lines += [f"## Metrics against {on_base}", ""]
    lines += metrics_section(against_base, inputs, "base")
    if current is None:
        lines += [
            "## Metrics against production",
            "",
            "Nothing is in production, so there is nothing to compare with.",
            "",
        ]
    else:
        lines += [f"## Metrics against {prod_text}", ""]
        lines += metrics_section(against_prod, inputs, "production")
    lines += slices_section(inputs.metrics, against_base, on_base)
    lines += quarantine_section(inputs.data)
    lines += skew_section(inputs.skew)
    lines += timings_section(stages)
    lines += budget_section(budget)
    lines += [
        "## Plots",
        "",
        "GitHub draws these charts itself; the PNGs below (in the "
        "report's artifact) show the same data in full.",
        "",
    ]
    lines += charts.blocks(inputs.curves, inputs.importance, inputs.trials)
    for stem, _ in plots.NAMES:
        lines += [f"![{stem}]({prefix}plots/{stem}.png)", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def gate_section(gate: dict) -> list[str]:
    prod, cand = gate.get("production") or {}, gate.get("candidate") or {}
    cand_metrics, prod_metrics = cand.get("metrics") or {}, prod.get("metrics") or {}
    if prod.get("version"):
        against = (
            f"production {prod['version']} (`{prod.get('tag')}`, package "
            f"`{str(prod.get('digest'))[:12]}`)"
        )
    else:
        against = "nothing in production (the floors alone decide)"
    lines = [
        f"## Promotion gate: {str(gate['verdict']).upper()}",
        "",
        f"**{text(gate['reason'])}**",
        "",
        f"Candidate package `{str(cand.get('digest'))[:12]}` against {against}.",
    ]
    primary = gate.get("primary")
    if primary:
        rows = cand_metrics.get("rows")
        on = f" on {rows:,} golden rows" if isinstance(rows, int) else ""
        line = f"Primary metric `{primary}`{on}: candidate {metric(cand_metrics.get(primary))}"
        if prod.get("version"):
            line += f", production {metric(prod_metrics.get(primary))}"
        b = gate.get("bootstrap")
        if isinstance(b, dict) and is_number(b.get("confidence")):
            line += (
                f"; {b['confidence']:.0%} interval of the gain "
                f"[{signed(b.get('low'))}, {signed(b.get('high'))}]"
            )
            if isinstance(b.get("resamples"), int):
                line += f" over {b['resamples']:,} paired bootstrap resamples"
        lines.append(line + ".")
    lines += [
        "",
        "| check | candidate | production | threshold | result | reason |",
        "| --- | ---: | ---: | ---: | :---: | --- |",
    ]
    for c in gate["checks"]:
        lines.append(
            row(
                [
                    f"`{text(c.get('name'))}`",
                    figure(c.get("value")),
                    figure(c.get("baseline")),
                    figure(c.get("threshold")),
                    "pass" if c.get("passed") else "**fail**",
                    text(c.get("reason")),
                ]
            )
        )
    if not gate["checks"]:
        lines.append(row(["(none)", DASH, DASH, DASH, DASH, "the gate made no check"]))
    lines += ["", "**Warnings**", ""]
    lines += [f"- {text(w)}" for w in gate["warnings"]] or ["No warnings."]
    return lines + [""]


def params_section(diff: dict, on_base: str) -> list[str]:
    lines = [f"## Params against {on_base}", ""]
    changed = []
    for file, entries in sorted(diff.get("diff", {}).items()):
        for key, d in sorted(entries.items()):
            label = key if file == "params.yaml" else f"{file}:{key}"
            changed.append(row([f"`{text(label)}`", param(d.get("old")), param(d.get("new"))]))
    if changed:
        lines += ["| param | base | workspace |", "| --- | --- | --- |", *changed]
    else:
        lines.append("No param changes.")
    lines += problems(diff, "params")
    return lines + [""]


def metrics_section(diff: dict, inputs: Inputs, against: str) -> list[str]:
    entries = diff.get("diff", {})
    lines = []
    for path, ours, keep in (
        (METRICS, inputs.metrics, lambda k: k.count(".") == 1),
        (DATA, inputs.data, lambda k: True),
    ):
        found = entries.get(path, {})
        keys = ordered([k for k in found if keep(k)], ours)
        lines += [
            f"`{path}`" + ("" if path != METRICS else " (overall; slices below)"),
            "",
            f"| metric | {against} | workspace | delta |",
            "| --- | ---: | ---: | ---: |",
        ]
        for key in keys:
            old, new = found[key].get("old"), found[key].get("new")
            if isinstance(old, dict | list) or isinstance(new, dict | list):
                continue
            lines.append(row([f"`{text(key)}`", metric(old), metric(new), delta(old, new)]))
        lines.append("")
    return lines + problems(diff, "metrics", trailing=True)


def slices_section(metrics: dict, against_base: dict, on_base: str) -> list[str]:
    lines = [f"## Slices of {SLICE_SPLIT}", ""]
    slices = metrics.get(SLICE_SPLIT, {}).get("slices")
    if not isinstance(slices, dict) or not slices:
        return lines + [f"The {SLICE_SPLIT} metrics have no slices.", ""]
    lines += [f"Δ roc_auc is against {on_base}, where it has the value.", ""]
    base = against_base.get("diff", {}).get(METRICS, {})
    for column, values in slices.items():
        lines += [
            f"**{text(column)}**",
            "",
            "| value | rows | roc_auc | logloss | Δ roc_auc |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        small = None
        for value, figures in values.items():
            if value == TOO_SMALL:
                small = figures
                continue
            figures = figures if isinstance(figures, dict) else {}
            old = base.get(f"{SLICE_SPLIT}.slices.{column}.{value}.roc_auc", {}).get("old")
            lines.append(
                row(
                    [
                        text(value),
                        metric(figures.get("rows")),
                        metric(figures.get("roc_auc")),
                        metric(figures.get("logloss")),
                        delta(old, figures.get("roc_auc")),
                    ]
                )
            )
        if isinstance(small, dict):
            n, rows = small.get("values"), small.get("rows")
            lines += [
                "",
                f"Too small to score (only counted): {metric(n)} "
                f"value{'' if n == 1 else 's'}, {metric(rows)} "
                f"row{'' if rows == 1 else 's'}.",
            ]
        lines.append("")
    return lines


def quarantine_section(data: dict) -> list[str]:
    lines = [
        "## Quarantine",
        "",
        "| table | rows read | good | bad | bad share |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    reasons = []
    for name, t in sorted(data["tables"].items()):
        records, bad = t.get("records"), t.get("bad")
        good = records - bad if is_number(records) and is_number(bad) else None
        share = f"{bad / records:.2%}" if is_number(bad) and records else DASH
        lines.append(row([f"`{text(name)}`", metric(records), metric(good), metric(bad), share]))
        counts = t.get("reasons") or {}
        reasons += [
            (name, reason, counts[reason])
            for reason in sorted(
                counts, key=lambda r: (-counts[r] if is_number(counts[r]) else 0, r)
            )
        ]
    lines.append("")
    if reasons:
        lines += ["| table | reason | rows |", "| --- | --- | ---: |"]
        lines += [row([f"`{text(n)}`", f"`{text(r)}`", metric(c)]) for n, r, c in reasons]
    else:
        lines.append("No record was quarantined.")
    return lines + [""]


def skew_section(skew: dict | None) -> list[str]:
    lines = ["## Training/serving skew", ""]
    if skew is None:
        return lines + [f"No `{SKEW}`: this commit predates the skew stage.", ""]
    checked, different = skew.get("rows_checked"), skew.get("rows_different")
    features = skew.get("features_different") or {}
    lines += [
        f"Golden rows served from their raw records through the service, against "
        f"generate's rows (`{SKEW}`): **{metric(different)} of {metric(checked)} differ**.",
        "",
        "| rows checked | rows different | predictions different | largest difference |",
        "| ---: | ---: | ---: | ---: |",
        row(
            [
                metric(checked),
                metric(different),
                metric(skew.get("predictions_different")),
                metric(skew.get("max_prediction_difference")),
            ]
        ),
        "",
    ]
    if features:
        lines += ["| feature | rows different |", "| --- | ---: |"]
        lines += [row([f"`{text(n)}`", metric(c)]) for n, c in sorted(features.items())]
        lines.append("")
    return lines


def timings_section(stages: list[StageRun] | None) -> list[str]:
    lines = ["## Stage timings", ""]
    if stages is None:
        return lines + ["No log given (`--log`), so no timings.", ""]
    if not stages:
        return lines + ["The log names no stage; is it the output of `dvc repro`?", ""]
    lines += ["| stage | status | seconds |", "| --- | --- | ---: |"]
    for s in stages:
        lines.append(
            row([f"`{text(s.name)}`", s.status, DASH if s.seconds is None else f"{s.seconds:.1f}"])
        )
    timed = [s.seconds for s in stages if s.seconds is not None]
    ran = sum(s.status == "ran" for s in stages)
    lines.append(row(["**total**", f"{ran} ran", f"{sum(timed):.1f}" if timed else DASH]))
    return lines + [""]


def budget_section(budget: dict | None) -> list[str]:
    lines = ["## Performance budget", ""]
    if budget is None:
        return lines + ["No budget figures given (`--budget`): this run measured none.", ""]
    figures = sorted(budget["figures"].values(), key=lambda f: f["number"])
    failed = [f for f in figures if f["result"] == "fail"]
    measured = [f for f in figures if f["result"] in ("pass", "fail")]
    verdict = (
        f"**{len(failed)} of {len(measured)} figures past their budget line**"
        if failed
        else f"**all {len(measured)} measured figures within budget**"
    )
    ref, head = budget["sides"]["REF"]["commit"], budget["sides"]["HEAD"]["commit"]
    lines += [
        f"{verdict}. `bench/budget.py{' --quick' if budget.get('quick') else ''}` on "
        f"{text(budget.get('machine', 'this runner'))}, {text(budget.get('date', ''))}: "
        f"REF `{text(ref)[:8]}`, HEAD `{text(head)[:8]}` (this pull request), side by "
        "side. Above 1.00x is worse; the lines are bench/budget.yaml's.",
        "",
        "| # | figure | REF | HEAD | ratio | budget line | result |",
        "| ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for f in figures:
        shown = f["shown"]
        result = "**fail**" if f["result"] == "fail" else text(f["result"])
        cells = [shown["REF"], shown["HEAD"], shown["ratio"], shown["line"]]
        lines.append(row([str(f["number"]), text(f["label"]), *map(text, cells), result]))
    return lines + [""]


def problems(diff: dict, what: str, trailing: bool = False) -> list[str]:
    """DVC's read errors in a diff for the files the report shows, one line each (a
    revision without the file is no error: its values show as missing)."""
    lines = []
    for rev, errors in sorted((diff.get("errors") or {}).items()):
        items = errors.items() if isinstance(errors, dict) else [("", errors)]
        for path, exc in sorted(items, key=lambda kv: kv[0]):
            if isinstance(exc, FileNotFoundError) or path not in ("", *SHOWN):
                continue
            where = f"`{path}` " if path else ""
            lines.append(
                f"- DVC could not read the {what} {where}at "
                f"`{rev[:8] if re.fullmatch(r'[0-9a-f]{40}', rev) else rev}`: "
                f"{text(first_line(exc))}"
            )
    if lines:
        lines = ["", *lines] if not trailing else [*lines, ""]
    return lines


# --- formatting --------------------------------------------------------------------------


def ordered(keys: list[str], workspace: dict) -> list[str]:
    """The workspace file's own order, then keys only the other side has, sorted."""
    order = {k: i for i, k in enumerate(flat_keys(workspace))}
    return sorted(keys, key=lambda k: (0, order[k], "") if k in order else (1, 0, k))


def flat_keys(obj, prefix: str = "") -> list[str]:
    if not isinstance(obj, dict):
        return [prefix]
    return [
        k
        for key, value in obj.items()
        for k in flat_keys(value, f"{prefix}.{key}" if prefix else str(key))
    ]


def is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def metric(x) -> str:
    """A metric: 4 decimals, counts with thousands separators, missing as a dash."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.4f}"
    return text(x)


def delta(old, new) -> str:
    """new - old, signed: +12 for counts, +0.0031 for the rest; a dash when either is not
    a number."""
    if not (is_number(old) and is_number(new)):
        return DASH
    if isinstance(old, int) and isinstance(new, int):
        return f"{new - old:+,}"
    return signed(new - old)


def signed(x) -> str:
    if not is_number(x):
        return "n/a"
    out = f"{x:+.4f}"
    return "+0.0000" if out == "-0.0000" else out


def figure(x) -> str:
    """A gate figure as gate.json's reasons write it: 6 significant digits."""
    if x is None:
        return DASH
    if isinstance(x, str):
        return f"`{x[:12]}`"  # a package digest
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.6g}"
    return text(x)


def param(x) -> str:
    if x is None:
        return DASH
    value = x if isinstance(x, str) else json.dumps(x, sort_keys=True)
    return f"`{text(value)}`"


def text(x) -> str:
    """Safe inside a table cell: one line, pipes escaped."""
    return " ".join(str(x).split()).replace("|", "\\|")


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def first_line(exc) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def image_prefix(image_base: str | None) -> str:
    """Links are relative to report.md, or under `image_base` (which then holds plots/)."""
    if not image_base:
        return ""
    return image_base if image_base.endswith("/") else image_base + "/"
