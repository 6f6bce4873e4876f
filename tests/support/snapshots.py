"""Online snapshots written by the project's own code from tables the tests make, for
the tests that need one without Spark (the snapshot stage's own tests use Spark)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from ctrpipe import manifest
from ctrpipe.data.settings import Data
from ctrpipe.online import snapshot, store

CUT = dt.datetime(2026, 1, 14, 23, 0)
PRIOR_ALPHA, PRIOR_BETA = 1.0, 30.0


def dimensions(n_campaigns: int = 5, n_slots: int = 6) -> dict[str, pa.Table]:
    """The synthetic data's campaigns and slots, as the joins read them."""
    campaigns = pa.table(
        {
            "campaign_id": [f"c{i}" for i in range(n_campaigns)],
            "advertiser_id": [f"a{i % 2}" for i in range(n_campaigns)],
            "category": ["travel", None, "retail", "games", "retail"][:n_campaigns],
            "daily_budget": [100.0 * (i + 1) for i in range(n_campaigns)],
        }
    )
    slots = pa.table(
        {
            "slot_id": [f"s{i}" for i in range(n_slots)],
            "publisher_id": [f"p{i % 3}" for i in range(n_slots)],
            "position": pa.array([i % 5 + 1 for i in range(n_slots)], pa.int32()),
            "ad_size": ["300x250"] * n_slots,
            "site_category": ["news", "sport"] * (n_slots // 2),
        }
    )
    return {store.dimension_file("campaigns"): campaigns, store.dimension_file("slots"): slots}


def history(key: str, values: dict) -> pa.Table:
    """A history key's table: {value: (n, ctr, recent)}."""
    n, ctr, recent = zip(*values.values(), strict=True) if values else ((), (), ())
    return pa.table(
        {
            key: list(values),
            f"hist_{key}_n": pa.array(n, pa.float64()),
            f"hist_{key}_ctr": pa.array(ctr, pa.float64()),
            f"hist_{key}_recent": pa.array(recent, pa.float64()),
        }
    )


def full(data: Data) -> dict[str, pa.Table]:
    """The dimensions, and an empty table for each of `data`'s history keys."""
    return dimensions() | {store.history_file(k): history(k, {}) for k in data.history.keys}


def write(folder: Path, data: Data, tables: dict[str, pa.Table], cut=CUT) -> Path:
    manifest.write(folder, store.files(tables, snapshot.spec(data), cut))
    return folder


def tiny_data() -> Data:
    """The synthetic data config cut down to the features of tests.support.models'
    tiny model: device, campaign_id, floor_price, and position from the slots."""
    from tests.conftest import make_data

    return make_data(
        features={
            "categorical": ["device", "campaign_id"],
            "numeric": ["floor_price", "position"],
            "time": [],
        },
        history={"keys": []},
        slices=["device"],
    )


def tiny(folder: Path) -> Path:
    """A snapshot for the tiny model."""
    return write(folder, tiny_data(), dimensions())


SKEW_TIME = dt.datetime(2026, 1, 14, 10)
# Raw records of three golden rows of the tiny snapshot, and generate's rows for them:
# what the skew check (ctrpipe/serving/skew.py) compares.
SKEW_SAMPLE = pa.table(
    {
        "event_id": ["e1", "e2", "e3"],
        "ts": pa.array([SKEW_TIME] * 3, pa.timestamp("us")),
        "campaign_id": ["c1", "c-new", "c3"],
        "slot_id": ["s0", "s1", "s-new"],
        "device": ["mobile", "desktop", "tablet"],
        "floor_price": [1.5, None, 0.2],
    }
)
# generate's rows for them: position from the tiny snapshot's slots (index % 5 + 1)
SKEW_GOLDEN = pa.table(
    {
        "event_id": ["e0", "e1", "e2", "e3"],
        "label": pa.array([0, 1, 0, 0], pa.int32()),
        "device": ["ctv", "mobile", "desktop", "tablet"],
        "campaign_id": ["c1", "c1", "c-new", "c3"],
        "floor_price": [0.0, 1.5, None, 0.2],
        "position": [1.0, 1.0, 2.0, None],
    }
)
