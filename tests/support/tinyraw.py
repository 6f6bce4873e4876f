"""A hand-written raw dataset in the synthetic schema, small enough to reason about."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HEADER = (
    "event_id,ts,user_id,campaign_id,slot_id,device,country,floor_price,bid_price,clearing_price"
)

# (event id, time, user, campaign, slot, device, click delay in seconds or None)
IMPRESSIONS = [
    ("e01", "2026-01-01 00:00:00", "u1", "c1", "s1", "mobile", None),
    ("e02", "2026-01-01 02:00:00", "u1", "c1", "s1", "mobile", 30),
    ("e03", "2026-01-01 04:00:00", "u1", "c2", "s2", "desktop", None),
    ("e04", "2026-01-01 04:10:00", "u1", "c1", "s1", "mobile", 7200),  # click too late
    ("e05", "2026-01-01 05:00:00", "u2", "c1", "s2", "tablet", None),
    ("e06", "2026-01-02 09:00:00", "u2", "c2", "s1", "desktop", 5),
    ("e07", "2026-01-12 10:00:00", "u1", "c1", "s1", "mobile", 60),
    ("e08", "2026-01-12 11:00:00", "u3", "c2", "s2", "ctv", None),
    ("e09", "2026-01-14 08:00:00", "u2", "c1", "s1", "mobile", 20),
    ("e10", "2026-01-14 09:00:00", "u3", "c2", "s2", "desktop", None),
    ("e11", "2026-01-13 12:00:00", "u4", "c2", "s1", "mobile", None),
    ("e12", "2026-01-10 12:00:00", "u4", "c2", "s1", "mobile", None),
]
DIRTY_LINES = [
    "e90,2026-01-01 01:00:00,u9",  # malformed: too few fields
    "e91,2026-01-01 01:00:00,u9,c1,s1,mobile,US,0.1,n/a,0.1",  # bad type
    "e92,2026-01-01 01:00:00,,c1,s1,mobile,US,0.1,1.0,0.1",  # null user
    "e93,2026-01-01 01:00:00,u9,c1,s1,mobile,US,0.1,-3.0,0.1",  # out of range
    "e94,2026-01-01 01:00:00,u9,c1,s1,phone,US,0.1,1.0,0.1",  # unknown device
    "e01,2026-01-01 00:00:00,u1,c1,s1,mobile,US,0.1,1.0,0.5",  # duplicate id
]


def impression_line(e, ts, user, campaign, slot, device) -> str:
    return f"{e},{ts},{user},{campaign},{slot},{device},US,0.1,1.0,0.5"


def write(raw: Path, dirty: bool = False, impressions=IMPRESSIONS) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [impression_line(*row[:6]) for row in impressions]
    if dirty:
        lines += DIRTY_LINES
    (raw / "impressions.csv").write_text("\n".join(lines) + "\n")

    clicks = []
    for e, ts, *_, delay in impressions:
        if delay is not None:
            day, clock = ts.split(" ")
            h, m, s = (int(x) for x in clock.split(":"))
            total = h * 3600 + m * 60 + s + delay
            clicks.append(
                {
                    "click_id": f"k{e}",
                    "event_id": e,
                    "click_ts": f"{day} {total // 3600:02d}:{total % 3600 // 60:02d}:"
                    f"{total % 60:02d}",
                }
            )
    if dirty:
        clicks.append({"click_id": "k99", "event_id": "e-none", "click_ts": "2026-01-01 00:00:09"})
    text = "\n".join(json.dumps(c) for c in clicks) + "\n"
    if dirty:
        text += '{"click_id": "k98", "event_id"\n'
    (raw / "clicks.jsonl").write_text(text)

    (raw / "campaigns.csv").write_text(
        "campaign_id,advertiser_id,category,daily_budget\nc1,a1,travel,100.0\nc2,a2,retail,50\n"
    )
    pq.write_table(
        pa.table(
            {
                "slot_id": ["s1", "s2"],
                "publisher_id": ["p1", "p1"],
                "position": pa.array([1, 3], pa.int32()),
                "ad_size": ["300x250", "728x90"],
                "site_category": ["news", "games"],
            }
        ),
        raw / "slots.parquet",
    )
    return raw
