"""A single table with no time, no header and a two-character separator, in two files:
a census-like extract of people, labelled by whether their income is over 50K.

    people/part-1.data, people/part-2.data    age, workclass, fnlwgt (a census weight),
                                              education, hours, income (">50K" or "<=50K")

It has no key either: generate hashes each record for its id, and the split is by a
hash of that id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORK = np.array(["private", "self-emp", "gov", "none"])
EDUCATION = np.array(["school", "college", "bachelors", "masters", "doctorate"])


def write(folder: Path, people: int = 4000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "people").mkdir(parents=True, exist_ok=True)
    age = rng.integers(18, 80, people)
    work = rng.integers(0, len(WORK), people)
    edu = rng.integers(0, len(EDUCATION), people)
    hours = rng.integers(10, 70, people)
    fnlwgt = rng.integers(10_000, 1_000_000, people)
    logit = -4.0 + 0.9 * edu + 0.03 * (hours - 40) + 0.02 * (age - 40) - 1.5 * (work == 3)
    rich = rng.random(people) < 1 / (1 + np.exp(-logit))
    lines = [
        f"{a}, {WORK[w]}, {f}, {EDUCATION[e]}, {h}, {'>50K' if r else '<=50K'}"
        for a, w, f, e, h, r in zip(age, work, fnlwgt, edu, hours, rich)
    ]
    half = people // 2
    (folder / "people" / "part-1.data").write_text("\n".join(lines[:half]) + "\n")
    (folder / "people" / "part-2.data").write_text(
        "\n".join(lines[half:]) + "\n" + "77, private\n"  # a short line: malformed
    )
    return folder


def data_config(folder: Path) -> dict:
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "people": {
                "path": "people",
                "format": "csv",
                "header": False,
                "sep": ", ",
                "columns": {
                    "age": {"type": "int", "nullable": False},
                    "workclass": {"type": "string"},
                    "fnlwgt": {"type": "long"},
                    "education": {"type": "string"},
                    "hours": {"type": "int"},
                    "income": {"type": "string", "nullable": False, "values": [">50K", "<=50K"]},
                },
            }
        },
        "base": "people",
        "label": {"column": "income", "positive": [">50K"]},
        "features": {"categorical": ["workclass", "education"], "numeric": ["age", "hours"]},
        "slices": ["education"],
        "split": {"by": "hash", "validation_fraction": 0.2, "golden_fraction": 0.1, "seed": 1},
    }
