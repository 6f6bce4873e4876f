"""A small multi-table dataset unlike the synthetic one: loan applications that default.

Three tables in three formats, a label derived from a status column, no id clicks table,
numeric and categorical features from joined tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N = 600


def write(folder: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    customers = [f"cu{i:03d}" for i in range(60)]
    income = rng.lognormal(10.5, 0.4, len(customers)).round(0)
    with (folder / "customers.jsonl").open("w") as f:
        for i, c in enumerate(customers):
            f.write(
                json.dumps(
                    {
                        "customer_id": c,
                        "region": ["north", "south", "east"][i % 3],
                        "income": float(income[i]),
                        "segment": "gold" if i % 7 == 0 else "std",
                    }
                )
                + "\n"
            )
    pq.write_table(
        pa.table(
            {
                "product_code": ["P1", "P2", "P3"],
                "product_type": ["card", "mortgage", "personal"],
                "rate": [0.19, 0.04, 0.09],
            }
        ),
        folder / "products.parquet",
    )
    who = rng.integers(0, len(customers), N)
    product = rng.integers(0, 3, N)
    amount = rng.lognormal(8.5, 0.7, N).round(2)
    risk = (
        -2.0
        + 0.5 * (product == 0)
        + 0.4 * np.log(amount / 5000)
        - 0.5 * (np.log(income[who]) - 10.5)
    )
    default = rng.random(N) < 1 / (1 + np.exp(-risk))
    day = np.sort(rng.integers(0, 60, N))
    lines = ["app_id;applied_at;customer_id;product_code;amount;term_months;status"]
    for i in range(N):
        when = f"2025-{3 + day[i] // 30:02d}-{1 + day[i] % 30:02d}T{rng.integers(8, 20):02d}:00:00"
        status = "default" if default[i] else rng.choice(["repaid", "current"])
        lines.append(
            f"A{i:04d};{when};{customers[who[i]]};P{product[i] + 1};{amount[i]};"
            f"{[12, 24, 36][i % 3]};{status}"
        )
    (folder / "applications.csv").write_text("\n".join(lines) + "\n")
    return folder


def data_config(folder: Path) -> dict:
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "applications": {
                "path": "applications.csv",
                "sep": ";",
                "key": "app_id",
                "columns": {
                    "app_id": {"type": "string", "nullable": False},
                    "applied_at": {"type": "timestamp", "nullable": False},
                    "customer_id": {"type": "string", "nullable": False},
                    "product_code": {"type": "string"},
                    "amount": {"type": "double", "min": 0},
                    "term_months": {"type": "int"},
                    "status": {
                        "type": "string",
                        "nullable": False,
                        "values": ["default", "repaid", "current"],
                    },
                },
            },
            "customers": {
                "path": "customers.jsonl",
                "key": "customer_id",
                "columns": {
                    "customer_id": {"type": "string", "nullable": False},
                    "region": {"type": "string"},
                    "income": {"type": "double"},
                    "segment": {"type": "string"},
                },
            },
            "products": {
                "path": "products.parquet",
                "key": "product_code",
                "columns": {
                    "product_code": {"type": "string", "nullable": False},
                    "product_type": {"type": "string"},
                    "rate": {"type": "double"},
                },
            },
        },
        "base": "applications",
        "time": "applied_at",
        "joins": [
            {"table": "customers", "key": "customer_id", "required": True},
            {"table": "products", "key": "product_code"},
        ],
        "label": {"column": "status", "positive": ["default"]},
        "features": {
            "categorical": ["product_code", "region", "segment", "product_type"],
            "numeric": ["amount", "term_months", "income", "rate"],
            "time": ["day_of_week"],
        },
        "history": {"keys": ["customer_id"], "lag_seconds": 0, "recent_seconds": 2592000},
        "quality": {"max_bad_fraction": 0.05},
        "sample": {"negative_rate": 1.0, "seed": 0},
        "slices": ["product_type"],
        "split": {
            "by": "time",
            "validation_start": "2025-04-10",
            "golden": {"start": "2025-04-20", "end": "2025-05-01"},
        },
    }
