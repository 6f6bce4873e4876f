"""A multi-table retail dataset, unlike the ad logs: orders that arrive late.

    orders/day-*.csv   the fact table, a file per day: order_id, ts, shop, hour,
                       product_sku, region (the customer's), discount ("NA" when none,
                       sometimes empty), late (the label)
    stores.csv         keyed `code`, which orders call `shop`; its own `region` too
    weather.csv        keyed by two columns, (store_id, hour); `rain` is mostly "NA"
    products.parquet   keyed `sku`, which orders call `product_sku`

Whether an order is late depends mostly on the weather at its store and hour (a storm
hour), a little on the product, and not on the rest: the weather join is what a model
needs. A few records are bad on purpose (a malformed line, a text discount, a duplicate
order), and a few orders name a store hour with no weather row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

STORES, HOURS, PRODUCTS, DAYS = 40, 24, 30, 10
START = pd.Timestamp("2026-03-01")


def write(folder: Path, orders: int = 6000, seed: int = 0, dirt: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "orders").mkdir(parents=True, exist_ok=True)
    codes = np.array([f"S{i:02d}" for i in range(STORES)])
    regions = np.array(["north", "south", "east", "west"])
    pd.DataFrame(
        {
            "code": codes,
            "region": regions[np.arange(STORES) % 4],
            "size": np.where(np.arange(STORES) % 5 == 0, np.nan, rng.uniform(100, 900, STORES)),
        }
    ).to_csv(folder / "stores.csv", index=False, na_rep="NA")

    # Weather per store and hour of day; a storm in about 15% of them.
    store_id, hour = np.repeat(codes, HOURS), np.tile(np.arange(HOURS), STORES)
    storm = rng.random(len(store_id)) < 0.15
    temp = np.round(rng.normal(12, 6, len(store_id)) - 4 * storm, 1)
    rain = np.where(
        storm | (rng.random(len(store_id)) < 0.1),
        np.round(rng.gamma(2, 3, len(store_id)) + 8 * storm, 1),
        np.nan,
    )
    keep = rng.random(len(store_id)) > 0.02  # a few store hours have no weather row
    weather = pd.DataFrame({"store_id": store_id, "hour": hour, "temp": temp, "rain": rain})[keep]
    weather.to_csv(folder / "weather.csv", index=False, na_rep="NA")
    storm_of = dict(zip(zip(store_id, hour), storm))

    skus = np.array([f"P{i:03d}" for i in range(PRODUCTS)])
    fragile = rng.random(PRODUCTS) < 0.3
    pq.write_table(
        pa.table(
            {
                "sku": skus,
                "category": np.array(["food", "home", "toys"])[np.arange(PRODUCTS) % 3],
                "fragile": fragile,
                "weight_kg": np.round(rng.gamma(2, 1.5, PRODUCTS), 2),
            }
        ),
        folder / "products.parquet",
    )

    shop = codes[rng.integers(0, STORES, orders)]
    hour = rng.integers(0, HOURS, orders)
    product = rng.integers(0, PRODUCTS, orders)
    stormy = np.array([storm_of[(s, h)] for s, h in zip(shop, hour)])
    logit = -2.2 + 2.8 * stormy + 0.4 * fragile[product]
    late = (rng.random(orders) < 1 / (1 + np.exp(-logit))).astype(int)
    day = np.sort(rng.integers(0, DAYS, orders))
    ts = (
        START
        + pd.to_timedelta(day, "D")
        + pd.to_timedelta(hour, "h")
        + pd.to_timedelta(rng.integers(0, 3600, orders), "s")
    )
    discount = np.where(
        rng.random(orders) < 0.6, "NA", np.round(rng.uniform(0, 0.3, orders), 2).astype(str)
    )
    discount[rng.random(orders) < 0.05] = ""
    frame = pd.DataFrame(
        {
            "order_id": [f"O{i:07d}" for i in range(orders)],
            "ts": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "shop": shop,
            "hour": hour,
            "product_sku": skus[product],
            "region": regions[rng.integers(0, 4, orders)],
            "discount": discount,
            "late": late,
        }
    )
    for d in range(DAYS):
        lines = frame[day == d].to_csv(index=False, header=True, lineterminator="\n")
        if dirt and d == 0:
            lines += "O9999990,2026-03-01 01:00:00,S01\n"  # malformed: too few fields
            lines += "O9999991,2026-03-01 01:00:00,S01,3,P001,north,lots,0\n"  # text discount
            first = frame[day == d].iloc[0]
            lines += ",".join(str(v) for v in first) + "\n"  # the first order again
        (folder / "orders" / f"day-{d:02d}.csv").write_text(lines)
    return folder


def data_config(folder: Path, weather: bool = True) -> dict:
    """The data group for it, as a user would write it."""
    joins = [
        {"table": "stores", "key": "code", "base_key": "shop", "required": True},
        {"table": "products", "key": "sku", "base_key": "product_sku"},
    ]
    if weather:
        joins.append(
            {"table": "weather", "key": ["store_id", "hour"], "base_key": ["shop", "hour"]}
        )
    numeric = ["hour", "discount", "size", "weight_kg"] + (["temp", "rain"] if weather else [])
    return {
        "source": "files",
        "input_dir": str(folder),
        "tables": {
            "orders": {
                "path": "orders/*.csv",
                "key": "order_id",
                "null_values": ["NA", ""],
                "columns": {
                    "order_id": {"type": "string", "nullable": False},
                    "ts": {"type": "timestamp", "nullable": False},
                    "shop": {"type": "string", "nullable": False},
                    "hour": {"type": "int", "min": 0, "max": 23},
                    "product_sku": {"type": "string"},
                    "region": {"type": "string"},
                    "discount": {"type": "double", "min": 0},
                    "late": {"type": "int", "nullable": False},
                },
            },
            "stores": {
                "path": "stores.csv",
                "key": "code",
                "null_values": ["NA"],
                "columns": {
                    "code": {"type": "string", "nullable": False},
                    "region": {"type": "string"},
                    "size": {"type": "double"},
                },
            },
            "weather": {
                "path": "weather.csv",
                "key": ["store_id", "hour"],
                "null_values": ["NA"],
                "columns": {
                    "store_id": {"type": "string", "nullable": False},
                    "hour": {"type": "int", "nullable": False},
                    "temp": {"type": "double"},
                    "rain": {"type": "double"},
                },
            },
            "products": {
                "path": "products.parquet",
                "key": "sku",
                "columns": {
                    "sku": {"type": "string", "nullable": False},
                    "category": {"type": "string"},
                    "fragile": {"type": "boolean"},
                    "weight_kg": {"type": "double"},
                },
            },
        },
        "base": "orders",
        "time": "ts",
        "joins": joins,
        "label": {"column": "late", "positive": [1]},
        "features": {
            "categorical": ["shop", "region", "stores_region", "category", "fragile"],
            "numeric": numeric,
        },
        "slices": ["region"],
        "sample": {"negative_rate": 1.0, "seed": 0},
        "split": {
            "by": "time",
            "validation_start": "2026-03-07",
            "golden": {"start": "2026-03-09", "end": "2026-03-10"},
        },
    }
