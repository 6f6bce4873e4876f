"""Shop visits in CSV, a file per week, with a date for time: did a visit end in a sale.

    visits/week-1.csv, visits/week-2.csv
        visit_id, day (a date, 2026-01-01 to 2026-01-14), channel (text with spaces
        around it), spend ("NA" when unknown), sold (the label)

Read with `trim: true` and `null_values: [NA]`. Two records of the second week are bad on
purpose (BAD): a day that is no date and a day given as "NA".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

START = dt.date(2026, 1, 1)
DAYS = 14
CHANNELS = ("web", "store", "phone")
HEADER = "visit_id,day,channel,spend,sold"
# (reason, file) of each bad record
BAD = [("bad_type:day", "visits/week-2.csv"), ("null:day", "visits/week-2.csv")]


def records(visits: int = 1400, seed: int = 0) -> list[dict]:
    """The good records as they are meant: no spaces around text, None for unknown spend."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(0, DAYS, visits))
    channel = rng.integers(0, len(CHANNELS), visits)
    spend = np.round(rng.gamma(2, 20, visits), 2)
    known = rng.random(visits) > 0.25
    logit = -1.0 + 0.02 * (spend - 40) * known - 0.8 * (channel == 0)
    sold = rng.random(visits) < 1 / (1 + np.exp(-logit))
    return [
        {
            "visit_id": f"v{i:05d}",
            "day": START + dt.timedelta(days=int(day[i])),
            "channel": CHANNELS[channel[i]],
            "spend": float(spend[i]) if known[i] else None,
            "sold": int(sold[i]),
        }
        for i in range(visits)
    ]


def write(folder: Path, visits: int = 1400, seed: int = 0) -> Path:
    (folder / "visits").mkdir(parents=True, exist_ok=True)
    weeks: dict[int, list[str]] = {1: [HEADER], 2: [HEADER]}
    for i, r in enumerate(records(visits, seed)):
        channel = " " * (1 + i % 2) + r["channel"] + " " * (i % 3)
        spend = "NA" if r["spend"] is None else r["spend"]
        week = 1 + (r["day"] - START).days // 7
        weeks[week].append(f"{r['visit_id']},{r['day']}, {channel},{spend},{r['sold']}")
    weeks[2].append("v99990,2026-01-32,web,10.0,0")  # no such day
    weeks[2].append("v99991,NA,store,NA,1")
    for week, lines in weeks.items():
        (folder / "visits" / f"week-{week}.csv").write_text("\n".join(lines) + "\n")
    return folder


def data_config(folder: Path) -> dict:
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "visits": {
                "path": "visits",
                "format": "csv",
                "key": "visit_id",
                "trim": True,
                "null_values": ["NA"],
                "columns": {
                    "visit_id": {"type": "string", "nullable": False},
                    "day": {"type": "date", "nullable": False},
                    "channel": {"type": "string", "values": list(CHANNELS)},
                    "spend": {"type": "double", "min": 0},
                    "sold": {"type": "int", "nullable": False},
                },
            }
        },
        "base": "visits",
        "time": "day",
        "label": {"column": "sold", "positive": [1]},
        "features": {"categorical": ["channel"], "numeric": ["spend"], "time": ["day_of_week"]},
        "slices": ["channel"],
        "split": {
            "by": "time",
            "validation_start": "2026-01-08",
            "golden": {"start": "2026-01-12", "end": "2026-01-13"},
        },
    }
