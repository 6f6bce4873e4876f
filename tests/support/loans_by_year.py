"""Parquet loan applications whose outcomes sit in a second table keyed by id, with an
integer year as time.

    applications.parquet   id, year (int), amount, term, purpose
    outcomes.parquet       id, repaid (bool); a few applications have no outcome yet
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PURPOSES = np.array(["car", "home", "study", "other"])


def write(folder: Path, loans: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"L{i:05d}" for i in range(loans)])
    year = np.sort(rng.integers(2015, 2023, loans))
    amount = np.round(rng.lognormal(9, 0.6, loans), 2)
    term = rng.choice([12, 36, 60], loans)
    purpose = rng.integers(0, len(PURPOSES), loans)
    logit = 2.0 - 0.5 * np.log(amount / 8000) - 0.02 * (term - 36) - 0.8 * (purpose == 3)
    repaid = rng.random(loans) < 1 / (1 + np.exp(-logit))
    pq.write_table(
        pa.table(
            {
                "id": ids,
                "year": year.astype(np.int32),
                "amount": amount,
                "term": term.astype(np.int32),
                "purpose": PURPOSES[purpose],
            }
        ),
        folder / "applications.parquet",
    )
    known = rng.random(loans) > 0.03  # the newest have no outcome yet
    pq.write_table(
        pa.table({"id": ids[known], "repaid": repaid[known]}), folder / "outcomes.parquet"
    )
    return folder


def data_config(folder: Path) -> dict:
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "applications": {
                "path": "applications.parquet",
                "key": "id",
                "columns": {
                    "id": {"type": "string", "nullable": False},
                    "year": {"type": "int", "nullable": False},
                    "amount": {"type": "double", "min": 0},
                    "term": {"type": "int"},
                    "purpose": {"type": "string"},
                },
            },
            "outcomes": {
                "path": "outcomes.parquet",
                "key": "id",
                "columns": {
                    "id": {"type": "string", "nullable": False},
                    "repaid": {"type": "boolean", "nullable": False},
                },
            },
        },
        "base": "applications",
        "time": "year",
        "time_unit": "year",
        "label": {"column": "repaid", "table": "outcomes", "positive": [False]},
        "features": {"categorical": ["purpose"], "numeric": ["amount", "term"]},
        "slices": ["purpose"],
        "split": {
            "by": "time",
            "validation_start": "2020-01-01",
            "golden": {"start": "2022-01-01", "end": "2023-01-01"},
        },
    }
