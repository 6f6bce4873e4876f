"""The report's plots as Mermaid `xychart-beta` blocks, which GitHub draws in a pull-request
comment itself: no image has to be hosted anywhere. The PNGs in the report's folder show
the same data at full resolution.

Mermaid spreads a line's points evenly along the x axis, so each curve is resampled at
GRID evenly spaced x values (linear interpolation) before it is written.
"""

from __future__ import annotations

import numpy as np

GRID = 21  # x = 0, 0.05, ..., 1
TOP_FEATURES = 15


def blocks(
    curves: dict[str, dict[str, list[dict]]], importance: list[dict], trials: list[dict]
) -> list[str]:
    """Markdown lines: one fenced Mermaid chart per plot, each under a caption."""
    lines = []
    for kind, title, (x, y), (xlabel, ylabel) in (
        ("roc", "ROC", ("fpr", "tpr"), ("false positive rate", "true positive rate")),
        ("precision_recall", "precision-recall", ("recall", "precision"), ("recall", "precision")),
    ):
        splits = curves.get(kind, {})
        if splits:
            names = ", ".join(f"{i + 1}: {name}" for i, name in enumerate(splits))
            series = [resample(rows, x, y) for rows in splits.values()]
            lines += caption(f"{title} (lines {names})") + chart(
                title,
                f'x-axis "{xlabel}" 0 --> 1',
                f'y-axis "{ylabel}" 0 --> 1',
                [("line", s) for s in series],
            )
    golden = curves.get("calibration", {}).get("golden")
    if golden:
        bins = [f'"{r["mean_predicted"]:.3f}"' for r in golden]
        top = max(max(r["observed_rate"], r["mean_predicted"]) for r in golden)
        lines += caption(
            "calibration on golden (bars: observed click rate; line: mean "
            "prediction; x: mean prediction of each bin)"
        ) + chart(
            "calibration (golden)",
            f'x-axis "bin" [{", ".join(bins)}]',
            f'y-axis "click rate" 0 --> {nice(top)}',
            [
                ("bar", [r["observed_rate"] for r in golden]),
                ("line", [r["mean_predicted"] for r in golden]),
            ],
        )
    ranked = sorted(importance, key=lambda r: (-r["gain"], r["feature"]))[:TOP_FEATURES]
    if ranked:
        names = ", ".join(f'"{r["feature"]}"' for r in ranked)
        lines += caption(f"feature importance (gain, top {len(ranked)})") + chart(
            "feature importance",
            f"x-axis [{names}]",
            f'y-axis "gain" 0 --> {nice(ranked[0]["gain"])}',
            [("bar", [r["gain"] for r in ranked])],
        )
    scored = [t for t in trials if t["value"] is not None]
    if scored:
        low, high = min(t["value"] for t in scored), max(t["value"] for t in scored)
        pad = (high - low) * 0.1 or abs(high) * 0.01 or 0.01
        lines += caption("sweep: validation log loss per trial") + chart(
            "sweep",
            f'x-axis "trial" [{", ".join(str(t["number"]) for t in scored)}]',
            f'y-axis "log loss" {low - pad:.4f} --> {high + pad:.4f}',
            [("line", [t["value"] for t in scored])],
        )
    return lines


def resample(rows: list[dict], x: str, y: str) -> list[float]:
    """y at GRID evenly spaced x in [0, 1], from the curve's points sorted by x."""
    xs = np.array([r[x] for r in rows], np.float64)
    ys = np.array([r[y] for r in rows], np.float64)
    order = np.argsort(xs, kind="stable")
    return list(np.interp(np.linspace(0, 1, GRID), xs[order], ys[order]))


def chart(title: str, x_axis: str, y_axis: str, series: list[tuple[str, list[float]]]) -> list[str]:
    body = [f'  title "{title}"', f"  {x_axis}", f"  {y_axis}"]
    body += [f"  {kind} [{', '.join(f'{v:.4f}' for v in values)}]" for kind, values in series]
    return ["```mermaid", "xychart-beta", *body, "```", ""]


def caption(text: str) -> list[str]:
    return [f"**{text}**", ""]


def nice(top: float) -> str:
    """An axis end a little above `top`, with two significant digits."""
    return f"{float(f'{top * 1.05:.2g}'):g}" if top > 0 else "1"
