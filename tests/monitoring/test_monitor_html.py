"""monitor.html from hand-made results: the verdict, the order of the checks, escaping,
the notes for missing sections, valid inline images and byte-stable output."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from ctrpipe.monitoring import html

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<b>"Tom & Jerry\'s"</b> $5-$10'  # HTML specials, and mathtext for matplotlib


def check(name, kind, metric, value, warn, alarm, status, detail=""):
    return {
        "name": name,
        "kind": kind,
        "metric": metric,
        "value": value,
        "warn": warn,
        "alarm": alarm,
        "status": status,
        "detail": detail,
    }


def section(kind, bins, expected, actual):
    return {
        "kind": kind,
        "metric": "psi" if kind == "numeric" else "js",
        "bins": bins,
        "expected": expected,
        "actual": actual,
    }


def make_result(**changes) -> dict:
    """A small result with every section: two numeric and two categorical features, the
    prediction, quality with one slice feature, engineering and both actions."""
    numeric_bins = ["≤0.1", "0.1–0.5", ">0.5", "(missing)"]
    result = {
        "format": 1,
        "verdict": "alarm",
        "time": "2024-05-02T10:00:00+00:00",
        "window": {"since": "2024-05-01T10:00:00+00:00"},
        "model": {"version": "v7", "digest": "0123456789abcdef" * 4, "package": "models/x"},
        "rows": {
            "logged": 123456,
            "labelled": 4567,
            "other_models": [{"version": "v6", "digest": "fedcba9876543210" * 4, "rows": 321}],
        },
        "checks": [
            check("price", "input_drift", "psi", 0.05, 0.1, 0.25, "ok"),
            check("age", "input_drift", "psi", 0.15, 0.1, 0.25, "warn"),
            check("country", "input_drift", "js", 0.31, 0.1, 0.2, "alarm"),
            check("device", "input_drift", "js", 0.02, 0.1, 0.2, "ok"),
            check("prediction", "prediction_drift", "psi", 0.3, 0.1, 0.25, "alarm"),
            check(
                "roc_auc",
                "quality",
                "roc_auc_drop_lower",
                0.0,
                0.02,
                0.05,
                "ok",
                "AUC 0.7400 against 0.7500: a drop of 0.0100 ± 0.0300 (95%), 4567 rows, 140 clicks",
            ),
            check("logloss", "quality", "logloss_rise", 0.012, 0.01, 0.03, "warn"),
            check("calibration", "quality", "calibration_error", 0.05, 0.15, 0.3, "ok"),
            check(
                f"device={EVIL}",
                "quality",
                "roc_auc_drop_lower",
                0.04,
                0.03,
                0.06,
                "warn",
                "AUC 0.6500 against 0.7600: a drop of 0.1100 ± 0.0700 (95%), 900 rows, 30 clicks",
            ),
            check(
                "device=mobile",
                "quality",
                "roc_auc_drop_lower",
                None,
                0.03,
                0.06,
                "skipped",
                "12 rows; a slice is judged from 500",
            ),
            check("p99_ms", "engineering", "p99_ms", 25.0, 5.0, 20.0, "alarm"),
            check("p50_ms", "engineering", "p50_ms", 0.8, 1.0, 5.0, "ok"),
        ],
        "drift": {
            "price": section("numeric", numeric_bins, [0.3, 0.4, 0.3, 0.0], [0.28, 0.42, 0.3, 0.0]),
            "age": section("numeric", numeric_bins, [0.3, 0.4, 0.2, 0.1], [0.2, 0.4, 0.3, 0.1]),
            "country": section(
                "categorical",
                [f"c{i}" for i in range(30)] + [EVIL, "__other__", "(missing)"],
                [0.03] * 30 + [0.05, 0.04, 0.01],
                [0.02] * 30 + [0.3, 0.09, 0.01],
            ),
            "device": section(
                "categorical",
                ["desktop", "mobile", "(missing)"],
                [0.5, 0.5, 0.0],
                [0.52, 0.48, 0.0],
            ),
            "prediction": section(
                "numeric", numeric_bins, [0.6, 0.3, 0.1, 0.0], [0.4, 0.4, 0.2, 0.0]
            ),
        },
        "quality": {
            "overall": {
                "rows": 4567,
                "clicks": 140,
                "positive_rate": 0.030654,
                "mean_prediction": 0.0312,
                "calibration": 1.02,
                "logloss": 0.132,
                "roc_auc": 0.74,
                "roc_auc_se": 0.0153,
            },
            "reliability": [
                {
                    "lower": 0.0,
                    "upper": 0.1,
                    "weight": 4000,
                    "mean_predicted": 0.02,
                    "observed_rate": 0.021,
                },
                {
                    "lower": 0.1,
                    "upper": 0.2,
                    "weight": 567,
                    "mean_predicted": 0.13,
                    "observed_rate": 0.11,
                },
            ],
            "slices": {
                "device": {
                    EVIL: {
                        "rows": 900,
                        "clicks": 30,
                        "roc_auc": 0.65,
                        "roc_auc_se": 0.035,
                        "reference_roc_auc": 0.76,
                    },
                    "mobile": {
                        "rows": 12,
                        "clicks": 0,
                        "roc_auc": None,
                        "roc_auc_se": None,
                        "reference_roc_auc": None,
                    },
                }
            },
            "reference": {"roc_auc": 0.75, "logloss": 0.12, "positive_rate": 0.03},
        },
        "engineering": {
            "url": "http://127.0.0.1:8080/metrics?a=1&b=2",
            "p50_ms": 0.8,
            "p99_ms": 25.0,
            "error_rate": 0.0,
            "client_error_rate": None,
            "memory_mib": 412.5,
            "cpu_cores": 0.3,
            "requests": 98765,
        },
        "actions": [
            {
                "action": "retrain",
                "status": "done",
                "detail": "sent repository_dispatch 'drift-alarm' to o/r",
            },
            {"action": "rollback", "status": "failed", "detail": "no <remote> & co"},
        ],
    }
    result.update(changes)
    return result


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def page() -> str:
    return html.render(make_result())


def test_banner_carries_verdict_version_and_counts(page):
    banner = page[page.index("<header") : page.index("</header>")]
    assert 'class="banner v-alarm"' in banner
    assert "ALARM" in banner and "v7" in banner and "0123456789ab" in banner
    assert "123,456 rows logged" in banner and "4,567" in banner
    assert "v6" in banner and "fedcba987654" in banner and "321" in banner
    assert "0123456789abcdef0" not in banner  # the short digest only


def test_unversioned_model_and_missing_figures():
    result = make_result(
        model={"version": None, "digest": "ab" * 32, "package": "p"},
        rows={"logged": 10, "labelled": None, "other_models": []},
        verdict="ok",
        window={"since": None},
    )
    banner = html.render(result).split("</header>")[0]
    assert "unversioned" in banner and "v-ok" in banner
    assert f"{html.DASH} labelled" in banner and "all logs" in banner


def test_problems_are_alarms_then_warns_and_no_ok_ones(page):
    problems = page[page.index('id="problems"') :]
    problems = problems[: problems.index("</table>")]
    names = re.findall(r"<tr><td><span[^>]*>(\w+)</span></td><td>([^<]*)</td>", problems)
    statuses = [s for s, _ in names]
    assert statuses == ["alarm"] * 3 + ["warn"] * 3
    # within one status, the result's order
    assert [n for _, n in names[:3]] == ["country", "prediction", "p99_ms"]
    assert [n for _, n in names[3:5]] == ["age", "logloss"]
    assert "price" not in problems and "device=mobile" not in problems


def test_all_checks_are_collapsed_with_skipped_details(page):
    details = page[page.index("<details>") : page.index("</details>")]
    assert "All 12 checks" in details
    assert "device=mobile" in details and "12 rows; a slice is judged from 500" in details


def test_html_specials_are_escaped(page):
    assert EVIL not in page and "<b>" not in page
    assert "&lt;b&gt;&quot;Tom &amp; Jerry&#x27;s&quot;&lt;/b&gt;" in page
    assert "no &lt;remote&gt; &amp; co" in page
    assert "metrics?a=1&amp;b=2" in page
    # the page's own markup is intact: the evil value did not open a tag
    assert not any(tag == "b" for tag, _ in parse(page).tags)


def test_quality_none_and_engineering_none_have_notes():
    page = html.render(make_result(quality=None, engineering=None))
    assert "No labels were joined" in page
    assert "No metrics URL was given" in page
    assert "ROC AUC per" not in page and "p99 latency" not in page


def test_quality_and_engineering_tables(page):
    text = " ".join(parse(page).text)
    assert "ROC AUC (± 95%)" in text and "0.74 ± 0.0300" in text
    assert "p99 latency (ms)" in text and "98,765" in text
    quality = page[page.index("<h2>Quality") : page.index("<h2>Engineering")]
    assert "0.75" in quality and "0.12" in quality  # the validation column
    engineering = page[page.index("<h2>Engineering") : page.index("<h2>Actions")]
    assert "s-alarm" in engineering  # p99 over its alarm level
    assert f'<td>4xx rate</td><td class="n">{html.DASH}</td>' in engineering


def charts(page: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML (it fails on bad escaping)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, re.S)]


def test_charts_are_valid_svg_and_nothing_is_external(page):
    found = charts(page)
    # drift overview, prediction + 4 features' bins, reliability, one slice feature
    assert len(found) == 1 + 5 + 1 + 1
    for chart in found:
        assert chart.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(chart.get("width")) > 0 and float(chart.get("height")) > 0
    for tag, attrs in parse(page).tags:
        for key in ("src", "href"):
            assert not attrs.get(key) or attrs[key].startswith("data:"), (tag, attrs)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_drift_overview_bars_are_worst_first_and_coloured_by_status(page):
    overview = charts(page)[0]
    labels = [
        t.find(f"{SVG}title").text
        for t in overview.iter(f"{SVG}text")
        if t.find(f"{SVG}title") is not None
    ]
    assert labels == ["country (js)", "prediction (psi)", "age (psi)", "price (psi)", "device (js)"]
    fills = [r.get("fill") for r in overview.iter(f"{SVG}rect")]  # the legend has none
    assert fills == [html.COLOURS[s] for s in ("alarm", "alarm", "warn", "ok", "ok")]


def test_slice_chart_marks_validation_auc():
    def black_marks(result):
        chart = next(
            c for c in charts(html.render(result)) if c.get("aria-label") == "ROC AUC per device"
        )
        return sum(p.get("stroke") == "#000" for p in chart.iter(f"{SVG}path"))

    result = make_result()
    with_reference = black_marks(result)
    for figures in result["quality"]["slices"]["device"].values():
        figures["reference_roc_auc"] = None
    assert black_marks(result) == with_reference - 1  # the legend's mark stays


def test_same_result_same_bytes():
    result = make_result()
    first = html.render(copy.deepcopy(result))
    assert html.render(copy.deepcopy(result)) == first
    assert result == make_result()  # and the result is not changed


def test_no_checks_and_no_drift_renders():
    result = make_result(
        checks=[], drift={}, verdict="ok", quality=None, engineering=None, actions=[]
    )
    page = html.render(result)
    assert "The result has no checks." in page and "All 0 checks" in page
    assert "No feature was compared" in page and "No action was run." in page
    assert 'id="problems"' not in page


def test_drift_skipped_when_too_few_rows():
    result = make_result()
    for c in result["checks"]:
        if c["kind"].endswith("drift"):
            c.update(value=None, status="skipped", detail="12 rows; drift is judged from 1000")
    page = html.render(result)
    labels = [c.get("aria-label") for c in charts(page)]
    # the overview, and the bins of the prediction only: no feature has a drift value
    assert labels[0].startswith("drift against") and labels[1].startswith("prediction:")
    assert not any(label.startswith(("age:", "country:")) for label in labels)


def test_long_categorical_bins_are_folded():
    bins, expected, actual = html.fold(make_result()["drift"]["country"])
    assert len(bins) == html.TOP_BINS + 1
    assert bins[0] == EVIL  # largest first
    assert bins[-1] == f"({33 - html.TOP_BINS} other bins)"
    assert sum(expected) == pytest.approx(1.0) and sum(actual) == pytest.approx(1.0)
