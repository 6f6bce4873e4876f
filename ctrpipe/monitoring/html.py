"""monitor.html: the monitor's result (run.py documents it) as one page read at a glance.

Top to bottom: the verdict, the checks that are not ok, drift, quality, engineering and
what the alarm did. The page needs nothing but itself: the style is inline and the
charts are inline SVG written here. SVG rather than matplotlib PNGs (plots.py) because
matplotlib took 0.2-0.6 s a figure here, 2-3 s for a page of 35 features, while these
take milliseconds, stay sharp when zoomed, and their labels can be searched. Every string
from the result is escaped; a missing figure shows as a dash; nothing depends on the
clock or the machine, so the same result gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from ctrpipe.monitoring.checks import ORDER, Z95

DASH = "–"
COLOURS = {"ok": "#2e7d32", "warn": "#e69500", "alarm": "#c62828", "skipped": "#9e9e9e"}
REFERENCE = "#78909c"  # the reference (validation) side of a comparison
ACTION_STATUS = {"done": "ok", "failed": "alarm", "skipped": "skipped"}
TOP_DRIFTED = 4  # features whose bins are drawn, besides the prediction
TOP_BINS = 15  # categorical bins drawn; the rest are summed into one bar
MAX_SLICE_VALUES = 30  # slice values drawn per slice feature: those with the most rows
ENGINEERING = [
    ("p50_ms", "p50 latency (ms)"),
    ("p99_ms", "p99 latency (ms)"),
    ("error_rate", "5xx rate"),
    ("client_error_rate", "4xx rate"),
    ("memory_mib", "memory (MiB)"),
    ("cpu_cores", "CPU (cores)"),
    ("snapshot_age_hours", "online snapshot age (hours)"),
]
# (figure, label, reference key, check name) of the overall quality table.
QUALITY = [
    ("rows", "labelled rows", None, None),
    ("clicks", "clicks", None, None),
    ("positive_rate", "click rate", "positive_rate", None),
    ("mean_prediction", "mean prediction", None, None),
    ("calibration", "calibration (mean prediction / click rate)", None, "calibration"),
    ("logloss", "log loss", "logloss", "logloss"),
    ("roc_auc", "ROC AUC (± 95%)", "roc_auc", "roc_auc"),
]
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1180px;margin:0 auto;
padding:0 16px 32px}
h2{margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{color:#fff;padding:14px 18px;border-radius:0 0 6px 6px}
.banner h1{margin:0 0 4px;font-size:24px}.banner p{margin:2px 0}
.v-ok{background:#2e7d32}.v-warn{background:#e69500;color:#111}.v-alarm{background:#c62828}
table{border-collapse:collapse;margin:6px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.s{display:inline-block;min-width:52px;text-align:center;border-radius:3px;color:#fff;
font-size:12px}
.s-ok{background:#2e7d32}.s-warn{background:#e69500;color:#111}.s-alarm{background:#c62828}
.s-skipped{background:#9e9e9e}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));
gap:16px 24px}svg{max-width:100%;height:auto;font:11px system-ui,sans-serif}
svg .t{font-size:13px;font-weight:600}
.note{color:#555}summary{cursor:pointer;margin:8px 0}
"""


def render(result: dict) -> str:
    checks = result.get("checks") or []
    named = {c.get("name"): c for c in checks}
    body = [
        banner(result),
        problems(checks),
        drift_section(result.get("drift") or {}, named),
        quality_section(result.get("quality"), named),
        engineering_section(result.get("engineering"), named),
        actions_section(result.get("actions") or []),
    ]
    title = f"ctrpipe monitor: {result.get('verdict')} ({version(result.get('model'))})"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


# --- text -------------------------------------------------------------------------------


def text(value) -> str:
    """A value as escaped HTML: None a dash, numbers in a fixed, short format."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value))


def badge(status, classes=None) -> str:
    # The class comes from a fixed set; the text is whatever the result says.
    cls = (classes or {s: s for s in COLOURS}).get(status, "skipped")
    return f'<span class="s s-{cls}">{text(status)}</span>'


def table(head: list[str], rows: list[list[str]], numeric=(), attrs="") -> str:
    """Cells are HTML already; columns in `numeric` are right-aligned."""
    th = "".join(f"<th>{h}</th>" for h in head)
    td = lambda i, c: f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
    tr = "".join("<tr>" + "".join(td(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


def version(model) -> str:
    return (model or {}).get("version") or "unversioned"


def short(digest) -> str:
    return str(digest)[:12] if digest else DASH


def colour(check: dict) -> str:
    return COLOURS.get(check.get("status"), COLOURS["skipped"])


# --- sections ---------------------------------------------------------------------------


def banner(r: dict) -> str:
    model, rows = r.get("model") or {}, r.get("rows") or {}
    verdict = r.get("verdict") if r.get("verdict") in COLOURS else "alarm"  # unknown: loud
    since = (r.get("window") or {}).get("since")
    window = f"since {text(since)}" if since else "all logs"
    others = ", ".join(
        f"{text(version(m))} <code>{text(short(m.get('digest')))}</code> "
        f"({text(m.get('rows'))} rows)"
        for m in rows.get("other_models") or []
    )
    return (
        f'<header class="banner v-{verdict}"><h1>{text(r.get("verdict")).upper()} · '
        f"{text(version(model))} <code>{text(short(model.get('digest')))}</code></h1>"
        f"<p>{text(r.get('time'))} · window {window} · "
        f"{text(rows.get('logged'))} rows logged · {text(rows.get('labelled'))} "
        f"labelled</p>"
        f"<p>other models in the window: {others or 'none'}</p></header>"
    )


def problems(checks: list[dict]) -> str:
    bad = sorted(
        (c for c in checks if c.get("status") in ("warn", "alarm")),
        key=lambda c: -ORDER[c["status"]],
    )  # stable: alarms, then warns, in order
    head = ["status", "name", "kind", "metric", "value", "warn", "alarm", "detail"]
    rows = lambda cs: [[badge(c.get("status")), *(text(c.get(k)) for k in head[1:])] for c in cs]
    counts = ", ".join(f"{sum(c.get('status') == s for c in checks)} {s}" for s in ORDER)
    top = (
        table(head, rows(bad), (4, 5, 6), ' id="problems"')
        if bad
        else f"<p>{'Every check is ok.' if checks else 'The result has no checks.'}</p>"
    )
    return (
        f"<h2>Checks not ok</h2>{top}<details><summary>All {len(checks)} checks "
        f"({counts})</summary>{table(head, rows(checks), (4, 5, 6))}</details>"
    )


def drift_section(drift: dict, named: dict) -> str:
    judged = sorted(
        ((n, named.get(n) or {"metric": s.get("metric")}) for n, s in drift.items()),
        key=lambda nc: (-ORDER.get(nc[1].get("status"), -1), -(nc[1].get("value") or 0), nc[0]),
    )  # worst first
    if not judged:
        return '<h2>Drift</h2><p class="note">No feature was compared with its reference.</p>'
    rows = [
        Row(
            f"{n} ({c.get('metric')})",
            [(c.get("value"), colour(c))],
            # levels differ by metric (PSI or JS), so each bar carries its own marks
            [(c[k], COLOURS[k]) for k in ("warn", "alarm") if c.get(k) is not None],
            note=DASH if c.get("value") is None else f"{c['value']:.3f}",
        )
        for n, c in judged
    ]
    top = max([0.01, *(v for r in rows for v, _ in [*r.bars, *r.marks] if v is not None)])
    out = [
        "<h2>Drift</h2>",
        hbars(
            "drift against the reference profile (PSI: numeric and prediction, JS: categorical)",
            rows,
            0,
            top * 1.05,
            [(COLOURS["warn"], "warn level", "mark"), (COLOURS["alarm"], "alarm level", "mark")],
            1100,
        ),
    ]
    shown = ["prediction"] if "prediction" in drift else []
    shown += [n for n, c in judged if n != "prediction" and c.get("value")][:TOP_DRIFTED]
    return (
        "\n".join(out)
        + '<div class="grid">'
        + "".join(bins_chart(n, drift[n], named.get(n) or {}) for n in shown)
        + "</div>"
    )


def fold(section: dict) -> tuple[list[str], list[float], list[float]]:
    """A categorical section's TOP_BINS largest bins, largest first, and the rest as one."""
    bins, expected, actual = section["bins"], section["expected"], section["actual"]
    if section.get("kind") != "categorical" or len(bins) <= TOP_BINS + 1:
        return bins, expected, actual
    order = sorted(range(len(bins)), key=lambda i: (-max(expected[i], actual[i]), i))
    top, rest = order[:TOP_BINS], order[TOP_BINS:]
    return (
        [*(bins[i] for i in top), f"({len(rest)} other bins)"],
        [*(expected[i] for i in top), sum(expected[i] for i in rest)],
        [*(actual[i] for i in top), sum(actual[i] for i in rest)],
    )


def bins_chart(name: str, section: dict, check: dict) -> str:
    bins, expected, actual = fold(section)
    value = check.get("value")
    title = (
        f"{name}: {section.get('metric')} {DASH if value is None else f'{value:.3f}'}"
        f" ({check.get('status', 'skipped')})"
    )
    rows = [
        Row(str(b), [(e, REFERENCE), (a, colour(check))]) for b, e, a in zip(bins, expected, actual)
    ]
    top = max([0.01, *expected, *actual])
    return hbars(
        title,
        rows,
        0,
        top * 1.05,
        [(REFERENCE, "reference", "bar"), (colour(check), "served", "bar")],
        axis="fraction of rows",
    )


def quality_section(quality: dict | None, named: dict) -> str:
    if quality is None:
        return (
            '<h2>Quality</h2><p class="note">No labels were joined '
            "(monitor.labels), so quality was not judged.</p>"
        )
    overall, ref = quality.get("overall") or {}, quality.get("reference") or {}
    rows = []
    for key, label, ref_key, check in QUALITY:
        value = text(overall.get(key))
        if key == "roc_auc" and overall.get("roc_auc_se") is not None:
            value += f" ± {Z95 * overall['roc_auc_se']:.4f}"
        rows.append(
            [
                label,
                value,
                text(ref.get(ref_key)) if ref_key else "",
                badge(named[check].get("status")) if check in named else "",
            ]
        )
    charts = [reliability_chart(quality.get("reliability") or [])]
    charts += [
        slice_chart(name, values, named)
        for name, values in (quality.get("slices") or {}).items()
        if values
    ]
    return (
        "<h2>Quality</h2>"
        + table(["figure", "served", "validation", "check"], rows, (1, 2))
        + '<div class="grid">'
        + "".join(charts)
        + "</div>"
    )


def slice_chart(name: str, values: dict, named: dict) -> str:
    most = sorted(values, key=lambda v: (-values[v].get("rows", 0), v))[:MAX_SLICE_VALUES]
    rows = []
    for v in (v for v in values if v in most):  # in the result's own (sorted) order
        f, c = values[v], named.get(f"{name}={v}") or {}
        auc, se = f.get("roc_auc"), f.get("roc_auc_se") or 0
        ref = f.get("reference_roc_auc")
        rows.append(
            Row(
                f"{v} ({f.get('rows', 0):,})",
                [(auc, colour(c))],
                [(ref, "#000")] if ref is not None else [],
                None if auc is None else (auc - Z95 * se, auc + Z95 * se),
                "no AUC" if auc is None else f"{auc:.3f}",
            )
        )
    aucs = [a for r in rows for a, _ in r.bars if a is not None]
    more = "" if len(values) <= MAX_SLICE_VALUES else f" ({len(most)} of {len(values)})"
    return hbars(
        f"ROC AUC per {name}{more}",
        rows,
        min([0.5, *aucs]),
        1,
        [("#000", "validation AUC", "mark"), ("#333", "95% interval", "whisker")],
        axis="ROC AUC (rows of each value in brackets)",
    )


def engineering_section(figures: dict | None, named: dict) -> str:
    if figures is None:
        return (
            '<h2>Engineering</h2><p class="note">No metrics URL was given '
            "(monitor.engineering.metrics_url), so the service was not checked.</p>"
        )
    rows = [
        [
            label,
            text(figures.get(key)),
            text((named.get(key) or {}).get("warn")),
            text((named.get(key) or {}).get("alarm")),
            badge(named[key].get("status")) if key in named else "",
        ]
        for key, label in ENGINEERING
    ]
    rows.append(["requests", text(figures.get("requests")), "", "", ""])
    return (
        f"<h2>Engineering</h2><p>From {text(figures.get('url'))}, since the service "
        f"started.</p>" + table(["figure", "value", "warn", "alarm", "check"], rows, (1, 2, 3))
    )


def actions_section(actions: list[dict]) -> str:
    if not actions:
        return '<h2>Actions</h2><p class="note">No action was run.</p>'
    rows = [
        [text(a.get("action")), badge(a.get("status"), ACTION_STATUS), text(a.get("detail"))]
        for a in actions
    ]
    return "<h2>Actions</h2>" + table(["action", "status", "detail"], rows)


# --- charts -----------------------------------------------------------------------------


@dataclass
class Row:
    """One row of a horizontal bar chart."""

    label: str
    bars: list[tuple[float | None, str]]  # (value, colour), one under the other
    marks: list[tuple[float, str]] = ()  # levels: a short vertical line across the row
    whisker: tuple[float, float] | None = None
    note: str = ""  # in a column right of the bars


BAR, CHAR = 11, 6.2  # px: a bar's height; a character's width, to size the labels


def hbars(
    title: str, rows: list[Row], lo: float, hi: float, legend=(), width=560, axis: str = ""
) -> str:
    label_w = min(max((len(r.label) for r in rows), default=1) * CHAR + 8, width * 0.4)
    x0, x1 = label_w, width - 48  # and the notes' column
    row_h = BAR * max((len(r.bars) for r in rows), default=1) + 7
    top = 44
    bottom = top + row_h * len(rows)
    x = lambda v: x0 + (x1 - x0) * (min(max(v, lo), hi) - lo) / (hi - lo)
    out = [f'<text class="t" x="0" y="14">{escape(title)}</text>', legend_svg(legend, 32)]
    for t in ticks(lo, hi):
        out.append(
            f'<path d="M{x(t):.1f},{top}V{bottom}" stroke="#e5e5e5"/><text '
            f'x="{x(t):.1f}" y="{bottom + 14}" text-anchor="middle">{t:g}</text>'
        )
    out.append(
        f'<text x="{(x0 + x1) / 2:.1f}" y="{bottom + 30}" text-anchor="middle">'
        f"{escape(axis)}</text>"
    )
    for i, r in enumerate(rows):
        y, mid = top + i * row_h, top + (i + 0.5) * row_h
        label = (
            r.label
            if len(r.label) * CHAR + 8 <= label_w
            else r.label[: int((label_w - 8) / CHAR) - 1] + "…"
        )  # the whole label as a tooltip
        out.append(
            f'<text x="{x0 - 4:.1f}" y="{mid:.1f}" dy=".35em" text-anchor="end">'
            f"<title>{escape(r.label)}</title>{escape(label)}</text>"
        )
        out += [
            f'<rect x="{x0:.1f}" y="{y + 3.5 + j * BAR:.1f}" height="{BAR}" '
            f'width="{x(v) - x(lo):.1f}" fill="{c}"/>'
            for j, (v, c) in enumerate(r.bars)
            if v is not None
        ]
        if r.whisker:
            a, b = x(r.whisker[0]), x(r.whisker[1])
            out.append(
                f'<path d="M{a:.1f},{mid}H{b:.1f}M{a:.1f},{mid - 3}v6M{b:.1f},'
                f'{mid - 3}v6" stroke="#333"/>'
            )
        out += [
            f'<path d="M{x(v):.1f},{y + 1}V{y + row_h - 1}" stroke="{c}" stroke-width="2"/>'
            for v, c in r.marks
        ]
        # notes in a column of their own: clear of every bar and mark, easy to scan
        out.append(f'<text x="{x1 + 4:.1f}" y="{mid:.1f}" dy=".35em">{escape(r.note)}</text>')
    out.append(f'<path d="M{x0:.1f},{top}V{bottom}H{x1:.1f}" fill="none" stroke="#333"/>')
    return svg(width, bottom + 38, title, out)


def reliability_chart(bins: list[dict]) -> str:
    """Click rate against mean prediction per bin, the diagonal for calibrated, on axes
    from 0 to the round value above the largest: a few-percent click rate is readable."""
    if not bins:
        return '<p class="note">No reliability bins.</p>'
    hi = max(0.01, *(max(b["mean_predicted"], b["observed_rate"]) for b in bins))
    hi = min(1.0, next(t for t in ticks(0, hi * 1.5) if t >= hi))
    x0, y0, side = 50, 330, 280  # the origin, in px
    x = lambda v: f"{x0 + side * min(v, hi) / hi:.1f}"
    y = lambda v: f"{y0 - side * min(v, hi) / hi:.1f}"
    out = [
        '<text class="t" x="0" y="14">reliability: click rate against mean prediction'
        '</text><text x="0" y="32">per bin of the prediction; dashed: calibrated</text>'
    ]
    for t in ticks(0, hi):
        out.append(
            f'<path d="M{x(t)},{y0}V{y(hi)}M{x0},{y(t)}H{x(hi)}" stroke="#e5e5e5"/>'
            f'<text x="{x(t)}" y="{y0 + 14}" text-anchor="middle">{t:g}</text><text '
            f'x="{x0 - 4}" y="{y(t)}" dy=".35em" text-anchor="end">{t:g}</text>'
        )
    points = [(x(b["mean_predicted"]), y(b["observed_rate"]), b["weight"]) for b in bins]
    out += [
        f'<path d="M{x0},{y0}L{x(hi)},{y(hi)}" stroke="{REFERENCE}" '
        f'stroke-dasharray="4"/><polyline fill="none" stroke="#1565c0" points="'
        + " ".join(f"{px},{py}" for px, py, _ in points)
        + '"/>',
        *(
            f'<circle cx="{px}" cy="{py}" r="3.5" fill="#1565c0"><title>{text(n)} rows'
            f"</title></circle>"
            for px, py, n in points
        ),
        f'<path d="M{x0},{y(hi)}V{y0}H{x(hi)}" fill="none" stroke="#333"/>'
        f'<text x="{x0 + side / 2}" y="{y0 + 30}" text-anchor="middle">mean prediction'
        f'</text><text transform="translate(12 {y0 - side / 2}) rotate(-90)" '
        f'text-anchor="middle">click rate</text>',
    ]
    return svg(x0 + side + 20, y0 + 40, "reliability", out)


def legend_svg(items, y: float) -> str:
    """(colour, label, kind) on one line: kind bar (a box), mark (a level) or whisker."""
    out, x = [], 0.0
    for c, label, kind in items:
        if kind == "bar":
            out.append(f'<rect x="{x:.1f}" y="{y - 9}" width="12" height="10" fill="{c}"/>')
        elif kind == "mark":
            out.append(f'<path d="M{x + 6:.1f},{y - 10}v12" stroke="{c}" stroke-width="2"/>')
        else:
            out.append(
                f'<path d="M{x:.1f},{y - 4}h12M{x:.1f},{y - 7}v6M{x + 12:.1f},'
                f'{y - 7}v6" stroke="{c}"/>'
            )
        out.append(f'<text x="{x + 16:.1f}" y="{y}">{escape(label)}</text>')
        x += 16 + len(label) * CHAR + 14
    return "".join(out)


def ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values from lo to hi, at most about `most` of them: 0, 0.05, 0.1, ..."""
    raw = (hi - lo) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step + 1e-9) + 1)]


def svg(width: float, height: float, label: str, parts: list[str]) -> str:
    w, h = f"{width:.0f}", f"{height:.0f}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(label)}">'
        + "".join(parts)
        + "</svg>"
    )
