"""The pull-request report's plots as PNG files, byte-stable.

Each plot is drawn on a matplotlib Figure with the Agg canvas (no pyplot, no global
state, no display), in matplotlib's default style whatever a matplotlibrc says, at a
fixed size and resolution, and saved without the "Software" text chunk. PNG files carry
no time of their own, so the same tables give the same bytes on every run.

    roc.png                 ROC curves of validation and golden on one axes
    precision_recall.png    precision against recall, both splits
    calibration.png         observed rate against mean prediction per bin, and the diagonal
    feature_importance.png  total gain per feature, largest at the top
    sweep.png               the sweep's objective per trial, pruned trials marked
"""

from __future__ import annotations

from pathlib import Path

SIZE = (6.4, 4.8)  # inches
DPI = 100  # so every PNG is 640 x 480 pixels
MAX_FEATURES = 30  # the importance plot shows the features with the largest gain
COLOURS = {"validation": "#1f77b4", "golden": "#d62728"}

# (file stem, title) in the order the report shows them.
NAMES = [
    ("roc", "ROC"),
    ("precision_recall", "precision-recall"),
    ("calibration", "calibration"),
    ("feature_importance", "feature importance"),
    ("sweep", "sweep"),
]


def render(
    out_dir: str | Path,
    curves: dict[str, dict[str, list[dict]]],
    importance: list[dict],
    trials: list[dict],
) -> list[str]:
    """Write every PNG into `out_dir`; their file names, in NAMES order.

    curves: {"roc" | "precision_recall" | "calibration": {split: rows}}, the rows as
    evaluate writes them; importance: [{"feature", "gain"}]; trials: trials.csv's rows
    with "number", "state" and "value" (a float, or None for a trial without a value).
    """
    import matplotlib.style

    out_dir = Path(out_dir)
    drawers = {
        "roc": lambda ax: roc(ax, curves["roc"]),
        "precision_recall": lambda ax: precision_recall(ax, curves["precision_recall"]),
        "calibration": lambda ax: calibration(ax, curves["calibration"]),
        "feature_importance": lambda ax: feature_importance(ax, importance),
        "sweep": lambda ax: sweep(ax, trials),
    }
    written = []
    with matplotlib.style.context("default"):  # ignore any matplotlibrc
        for stem, _ in NAMES:
            name = f"{stem}.png"
            draw(out_dir / name, drawers[stem])
            written.append(name)
    return written


def draw(path: Path, body) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    body(ax)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def roc(ax, splits: dict[str, list[dict]]) -> None:
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance")
    for split, rows in splits.items():
        ax.plot(
            [r["fpr"] for r in rows],
            [r["tpr"] for r in rows],
            color=COLOURS.get(split),
            linewidth=1.5,
            label=split,
        )
    frame(ax, "ROC", "false positive rate", "true positive rate", unit=True)


def precision_recall(ax, splits: dict[str, list[dict]]) -> None:
    for split, rows in splits.items():
        ax.plot(
            [r["recall"] for r in rows],
            [r["precision"] for r in rows],
            color=COLOURS.get(split),
            linewidth=1.5,
            label=split,
        )
    frame(ax, "precision-recall", "recall", "precision", unit=True)


def calibration(ax, splits: dict[str, list[dict]]) -> None:
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    for split, rows in splits.items():
        ax.plot(
            [r["mean_predicted"] for r in rows],
            [r["observed_rate"] for r in rows],
            color=COLOURS.get(split),
            marker="o",
            markersize=4,
            linewidth=1.5,
            label=split,
        )
    frame(
        ax,
        "calibration (reliability)",
        "mean predicted probability",
        "observed click rate",
        unit=True,
    )


def feature_importance(ax, rows: list[dict]) -> None:
    # Largest gain at the top: barh draws the first bar at the bottom.
    top = sorted(rows, key=lambda r: (-r["gain"], r["feature"]))[:MAX_FEATURES][::-1]
    ax.barh(range(len(top)), [r["gain"] for r in top], color=COLOURS["validation"])
    ax.set_yticks(range(len(top)), [r["feature"] for r in top], fontsize=7)
    shown = "" if len(rows) <= MAX_FEATURES else f" (top {MAX_FEATURES} of {len(rows)})"
    ax.set_title(f"feature importance{shown}")
    ax.set_xlabel("total gain")
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)


def sweep(ax, trials: list[dict]) -> None:
    scored = [t for t in trials if t["value"] is not None]
    for state, marker, colour in (("COMPLETE", "o", COLOURS["validation"]), ("PRUNED", "x", "0.5")):
        these = [t for t in scored if t["state"] == state]
        if these:
            ax.scatter(
                [t["number"] for t in these],
                [t["value"] for t in these],
                marker=marker,
                color=colour,
                label=state.lower(),
            )
    others = [t for t in scored if t["state"] not in ("COMPLETE", "PRUNED")]
    if others:
        ax.scatter(
            [t["number"] for t in others],
            [t["value"] for t in others],
            marker="s",
            color="0.2",
            label="other",
        )
    complete = [t for t in scored if t["state"] == "COMPLETE"]
    if complete:
        best = min(complete, key=lambda t: (t["value"], t["number"]))
        ax.scatter(
            [best["number"]],
            [best["value"]],
            s=120,
            facecolors="none",
            edgecolors=COLOURS["golden"],
            linewidths=1.5,
            label="best",
        )
    ax.set_title("sweep: objective per trial (lower is better)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation log loss")
    ax.grid(color="0.9")
    ax.set_axisbelow(True)
    if scored:
        ax.legend(loc="best", fontsize=8)


def frame(ax, title: str, xlabel: str, ylabel: str, unit: bool) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if unit:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    ax.grid(color="0.9")
    ax.set_axisbelow(True)
    ax.legend(loc="best", fontsize=8)
