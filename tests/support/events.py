"""App sessions in JSON lines, a file per day, with epoch seconds for time: did a session
end in a purchase.

    events/day-00.jsonl ... day-09.jsonl
        id, at (epoch seconds, a JSON number), device and user (text with spaces around
        it), score (a number; "N/A" or a JSON null when unknown), bought (the label)

Read with `trim: true` and `null_values: ["N/A", "-"]`. Three records are bad on purpose
(BAD): a line cut short, a user given as "-" (a null where none is allowed), and an id
written again with spaces around it (the same key once trimmed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

START = 1_767_225_600  # 2026-01-01 00:00:00 UTC
DAYS = 10
DEVICES = ("phone", "tablet", "desktop")
# (reason, file) of each bad record
BAD = [
    ("duplicate_key:id", "events/day-00.jsonl"),
    ("malformed_record", "events/day-03.jsonl"),
    ("null:user", "events/day-05.jsonl"),
]


def records(events: int = 2000, seed: int = 0) -> list[dict]:
    """The good records as they are meant: no spaces around text, None for a score that
    is not known."""
    rng = np.random.default_rng(seed)
    at = np.sort(rng.integers(START, START + DAYS * 86400, events))
    device = rng.integers(0, len(DEVICES), events)
    user = rng.integers(0, 300, events)
    score = np.round(rng.uniform(0, 1, events), 3)
    known = rng.random(events) > 0.3
    logit = -1.5 + 2.0 * score * known + 0.6 * (device == 2)
    bought = rng.random(events) < 1 / (1 + np.exp(-logit))
    return [
        {
            "id": f"e{i:05d}",
            "at": int(at[i]),
            "device": DEVICES[device[i]],
            "user": f"u{user[i]:03d}",
            "score": float(score[i]) if known[i] else None,
            "bought": int(bought[i]),
        }
        for i in range(events)
    ]


def day_of(at: int) -> int:
    return (at - START) // 86400


def write(folder: Path, events: int = 2000, seed: int = 0) -> Path:
    (folder / "events").mkdir(parents=True, exist_ok=True)
    days: dict[int, list[str]] = {d: [] for d in range(DAYS)}
    for i, r in enumerate(records(events, seed)):
        line = {
            **r,
            "device": " " * (1 + i % 3) + r["device"] + " " * (i % 2),
            "user": r["user"] + "  ",
            # an unknown score as the token or as JSON's own null
            "score": r["score"] if r["score"] is not None else ("N/A" if i % 2 else None),
        }
        days[day_of(r["at"])].append(json.dumps(line))
    first = json.loads(days[0][7])
    days[0].append(json.dumps({**first, "id": f"  {first['id'].strip()} "}))
    days[3].append('{"id": "e99990", "at": 1767484800, "device": "phone"')
    days[5].append(
        json.dumps({"id": "e99991", "at": 1767657600, "device": "phone", "user": "-", "bought": 0})
    )
    for d, lines in days.items():
        (folder / "events" / f"day-{d:02d}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def data_config(folder: Path) -> dict:
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "events": {
                "path": "events/*.jsonl",
                "key": "id",
                "trim": True,
                "null_values": ["N/A", "-"],
                "columns": {
                    "id": {"type": "string", "nullable": False},
                    "at": {"type": "long", "nullable": False},
                    "device": {"type": "string"},
                    "user": {"type": "string", "nullable": False},
                    "score": {"type": "double", "min": 0, "max": 1},
                    "bought": {"type": "int", "nullable": False},
                },
            }
        },
        "base": "events",
        "time": "at",
        "time_unit": "seconds",
        "label": {"column": "bought", "positive": [1]},
        "features": {
            "categorical": ["device", "user"],
            "numeric": ["score"],
            "time": ["hour"],
        },
        "slices": ["device"],
        "split": {
            "by": "time",
            "validation_start": "2026-01-07",
            "golden": {"start": "2026-01-09", "end": "2026-01-10"},
        },
    }
