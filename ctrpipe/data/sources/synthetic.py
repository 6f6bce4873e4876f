"""Synthetic ad-auction logs, the default raw source (conf/data/synthetic.yaml).

A seeded world of users, campaigns and slots with heavy-tailed traffic; impressions drawn
from it CHUNK rows at a time, clicks from a logistic model of each impression, and about
`dirty_rate` of the records broken on purpose so that generate's quarantine has work.
Every draw comes from a generator keyed by (seed, chunk number): the same config gives
the same bytes on any machine. Text is built column-wise in Arrow, never row by row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ctrpipe.data.settings import Data, Synthetic
from ctrpipe.errors import ConfigError

CHUNK = 1_000_000  # impressions per chunk: bounds memory at any size
COLUMNS = {  # what this source writes, and in which format; the config orders the columns
    "impressions": (
        "csv",
        "event_id",
        "ts",
        "user_id",
        "campaign_id",
        "slot_id",
        "device",
        "country",
        "floor_price",
        "bid_price",
        "clearing_price",
    ),
    "clicks": ("json", "click_id", "event_id", "click_ts"),
    "campaigns": ("csv", "campaign_id", "advertiser_id", "category", "daily_budget"),
    "slots": ("parquet", "slot_id", "publisher_id", "position", "ad_size", "site_category"),
}
CATEGORIES = (
    "retail",
    "travel",
    "finance",
    "auto",
    "gaming",
    "food",
    "fashion",
    "tech",
    "health",
    "education",
    "entertainment",
    "real_estate",
    "insurance",
    "telecom",
    "sports",
)
COUNTRIES = (
    "US",
    "GB",
    "DE",
    "FR",
    "JP",
    "BR",
    "IN",
    "CA",
    "AU",
    "ES",
    "IT",
    "MX",
    "NL",
    "KR",
    "SE",
    "PL",
    "TR",
    "ID",
    "AR",
    "ZA",
)  # by traffic, Zipf-distributed
DEVICES, DEVICE_MIX = ("mobile", "desktop", "tablet", "ctv"), (0.55, 0.30, 0.08, 0.07)
POSITION_MIX = (0.30, 0.25, 0.18, 0.12, 0.09, 0.06)  # positions 1..6
AD_SIZES = ("300x250", "728x90", "320x50", "160x600", "300x600", "970x250")
SITE_CATEGORIES = (
    "news",
    "sports",
    "weather",
    "games",
    "video",
    "social",
    "shopping",
    "finance",
    "travel",
    "recipes",
    "tech",
    "music",
)

# The click model's logit. INTERCEPT puts the overall click rate near 3%.
INTERCEPT = -3.55
DEVICE_EFFECT = np.array([0.2, 0.0, 0.1, -0.7])  # mobile, desktop, tablet, ctv
POSITION_STEP = -0.25  # per position below the top: position 6 gets ~3x fewer clicks
FLOOR_EFFECT = 0.3  # per unit of log floor: premium (high-floor) inventory converts better
HOUR_EFFECT = 0.2  # amplitude of a daily cycle peaking at 21:00 UTC

# Impression dirt: each kind is drawn for dirty_rate / 6 of the rows.
DIRT = ("null_user", "text_bid", "bad_bid", "truncated", "garbage", "duplicate")
GARBAGE = (
    "ERROR 502 upstream timeout",
    "<html><body>Bad Gateway</body></html>",
    "----- log rotated -----",
    "\\N",
)
BID_TEXT = ("n/a", "unknown", "-", "#VALUE!")
ORPHAN_SEQ = 1 << 40  # orphaned clicks point at event numbers no impression has
LATE_Z = 1.8808  # the normal 97th percentile: 3% of click delays exceed the window


def write(data: Data, out_dir: Path) -> dict[str, int]:
    """Write the four raw tables under out_dir; return records written per table."""
    _check(data)
    s = data.source.synthetic
    world = _world(_rng(s.seed, 0), s)
    paths = {name: Path(out_dir) / data.tables[name].path for name in COLUMNS}
    order = {name: list(data.tables[name].columns) for name in COLUMNS}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(world["slots"].select(order["slots"]), paths["slots"])
    with open(paths["campaigns"], "wb") as out:
        out.write((",".join(order["campaigns"]) + "\n").encode())
        campaigns = world["campaigns"].select(order["campaigns"]).combine_chunks()
        _write_lines(out, pc.binary_join_element_wise(*campaigns.columns, ",").chunk(0))

    counts = {
        "impressions": 0,
        "clicks": 0,
        "campaigns": world["campaigns"].num_rows,
        "slots": world["slots"].num_rows,
    }
    with open(paths["impressions"], "wb") as impressions, open(paths["clicks"], "wb") as clicks:
        impressions.write((",".join(order["impressions"]) + "\n").encode())
        for chunk, first in enumerate(range(0, s.rows, CHUNK)):
            rng = _rng(s.seed, chunk + 1)
            imp = _impressions(rng, world, s, np.arange(first, min(first + CHUNK, s.rows)))
            lines = _impression_lines(rng, world, imp, order["impressions"], s.dirty_rate)
            click_lines = _click_lines(
                rng, world, _clicks(rng, imp, s), order["clicks"], s.dirty_rate
            )
            _write_lines(impressions, lines)
            _write_lines(clicks, click_lines)
            counts["impressions"] += len(lines)
            counts["clicks"] += len(click_lines)
    return counts


def _check(data: Data) -> None:
    seed = data.source.synthetic.seed
    if seed < 0:
        raise ConfigError(f"data.source.synthetic.seed: must be >= 0 (got {seed})")
    for name, (fmt, *columns) in COLUMNS.items():
        table = data.tables.get(name)
        if table is None or sorted(table.columns) != sorted(columns):
            got = ", ".join(table.columns) if table else "no such table"
            raise ConfigError(
                f"data.tables.{name}.columns: the synthetic source writes "
                f"{', '.join(columns)} (got {got})"
            )
        if table.file_format != fmt:
            raise ConfigError(
                f"data.tables.{name}.path: the synthetic source writes {fmt}, "
                f"not {table.file_format} ('{table.path}')"
            )


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Stream 0 builds the world, stream k+1 chunk k: no chunk depends on another.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def _world(rng: np.random.Generator, s: Synthetic) -> dict:
    """Users, campaigns and slots: traffic shares, click effects, and the dimension tables."""
    # Users scale with traffic; campaigns and slots grow slowly, as real inventories do.
    n_users = max(s.rows // 5, 10)
    n_campaigns = max(20, round(300 * (s.rows / 1e6) ** 0.2))
    n_slots = max(50, round(2000 * (s.rows / 1e6) ** 0.2))
    n_advertisers, n_publishers = max(4, n_campaigns // 5), max(5, n_slots // 10)
    advertiser = rng.integers(n_advertisers, size=n_campaigns)
    publisher = rng.integers(n_publishers, size=n_slots)
    position = rng.choice(6, n_slots, p=POSITION_MIX) + 1
    world = {
        "user_share": rng.permutation(_zipf(n_users, 0.9, offset=50)),
        "user_country": rng.choice(len(COUNTRIES), n_users, p=_zipf(len(COUNTRIES), 1.2)),
        "user_device": rng.choice(len(DEVICES), n_users, p=DEVICE_MIX),
        # Heavy-tailed (Student t) propensity: most users barely differ, a few click a lot.
        "user_effect": np.clip(0.45 * rng.standard_t(3, n_users), -3, 3),
        "campaign_share": rng.permutation(_zipf(n_campaigns, 0.9)),
        "campaign_category": rng.integers(len(CATEGORIES), size=n_advertisers)[advertiser],
        "campaign_effect": rng.normal(0, 0.5, n_campaigns),
        "campaign_bid": rng.lognormal(0, 0.3, n_campaigns),  # how aggressively it bids
        "slot_share": rng.permutation(_zipf(n_slots, 0.8)),
        "slot_position": position,
        "slot_effect": rng.normal(0, 0.4, n_slots),
        # Floors in dollars CPM, lower for worse positions.
        "slot_floor": rng.lognormal(np.log(0.8), 0.5, n_slots) * 1.15 ** -(position - 1.0),
        "category_device": rng.normal(0, 0.3, (len(CATEGORIES), len(DEVICES))),
        "salts": rng.integers(1 << 62, size=2, dtype=np.uint64),  # ids differ by seed
        "user_id": _names("u", n_users),
        "campaign_id": _names("cmp", n_campaigns),
        "slot_id": _names("slot", n_slots),
    }
    # Daily budgets in dollars; bigger campaigns get bigger budgets.
    budget = rng.lognormal(np.log(200), 0.8, n_campaigns) * np.sqrt(
        world["campaign_share"] * n_campaigns
    )
    world["campaigns"] = pa.table(
        {
            "campaign_id": world["campaign_id"],
            "advertiser_id": _names("adv", n_advertisers).take(advertiser),
            "category": pa.array(CATEGORIES).take(world["campaign_category"]),
            "daily_budget": _fixed(budget, 2),
        }
    )  # written as text: CSV is the only output
    world["slots"] = pa.table(
        {
            "slot_id": world["slot_id"],
            "publisher_id": _names("pub", n_publishers).take(publisher),
            "position": pa.array(position, pa.int32()),
            "ad_size": pa.array(AD_SIZES).take(rng.integers(len(AD_SIZES), size=n_slots)),
            "site_category": pa.array(SITE_CATEGORIES).take(
                rng.integers(len(SITE_CATEGORIES), size=n_publishers)[publisher]
            ),
        }
    )
    return world


def _zipf(n: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    """Zipf-Mandelbrot shares, busiest first: rank r gets a share ~ (r + offset)^-exponent."""
    share = (np.arange(n) + offset) ** -exponent
    return share / share.sum()


def _impressions(rng: np.random.Generator, world: dict, s: Synthetic, seq: np.ndarray) -> dict:
    n = len(seq)
    # Traffic by hour of the period: a daily cycle peaking at 20:00 UTC, busier weekends.
    hours = np.arange(s.days * 24)
    weekend = (s.start.weekday() + hours // 24) % 7 >= 5
    traffic = (1 + 0.6 * np.cos(2 * np.pi * (hours % 24 - 20) / 24)) * np.where(weekend, 1.15, 1)
    hour = rng.choice(hours, n, p=traffic / traffic.sum())
    ts = _epoch(s.start) + hour * 3600 + rng.integers(0, 3600, n)

    user = rng.choice(len(world["user_share"]), n, p=world["user_share"])
    campaign = rng.choice(len(world["campaign_share"]), n, p=world["campaign_share"])
    slot = rng.choice(len(world["slot_share"]), n, p=world["slot_share"])
    # Users mostly stay on their own device.
    device = np.where(
        rng.random(n) < 0.85, world["user_device"][user], rng.choice(len(DEVICES), n, p=DEVICE_MIX)
    )
    floor = np.round(np.minimum(world["slot_floor"][slot] * rng.lognormal(0, 0.25, n), 40), 4)
    margin = world["campaign_bid"][campaign] * rng.lognormal(-0.3, 0.5, n)
    bid = np.round(np.minimum(floor * (1 + margin), 49.99), 4)
    clearing = np.round(floor + (bid - floor) * rng.beta(2, 2, n), 4)  # the second price

    category = world["campaign_category"][campaign]
    logit = (
        INTERCEPT
        + world["campaign_effect"][campaign]
        + world["slot_effect"][slot]
        + POSITION_STEP * (world["slot_position"][slot] - 1)
        + DEVICE_EFFECT[device]
        + HOUR_EFFECT * np.cos(2 * np.pi * (hour % 24 - 21) / 24)
        + world["user_effect"][user]
        + world["category_device"][category, device]
        + FLOOR_EFFECT * np.log(floor)
    )
    clicked = rng.random(n) < 1 / (1 + np.exp(-logit))
    return {
        "seq": seq,
        "ts": ts,
        "user": user,
        "campaign": campaign,
        "slot": slot,
        "device": device,
        "floor": floor,
        "bid": bid,
        "clearing": clearing,
        "clicked": clicked,
    }


def _clicks(rng: np.random.Generator, imp: dict, s: Synthetic) -> dict:
    # Log-normal delay with a one-minute median, spread so ~3% of clicks miss the window.
    at = np.flatnonzero(imp["clicked"])
    sigma = max(np.log(s.click_window_seconds / 60) / LATE_Z, 0.5)
    delay = np.ceil(60 * np.exp(sigma * rng.standard_normal(len(at)))).astype(np.int64)
    # Orphans: clicks on events that were never logged, at any time of the period.
    orphans = rng.binomial(len(at), s.dirty_rate / 2)
    where = rng.integers(0, len(at) + 1, size=orphans)
    orphan_ts = _epoch(s.start) + rng.integers(0, s.days * 86400, orphans)
    return {
        "event_seq": np.insert(imp["seq"][at], where, ORPHAN_SEQ + imp["seq"][:orphans]),
        "ts": np.insert(imp["ts"][at] + delay, where, orphan_ts),
    }


def _impression_fields(world: dict, imp: dict) -> dict[str, pa.Array]:
    return {
        "event_id": _hex_ids(imp["seq"], world["salts"][0]),
        "ts": _timestamps(imp["ts"]),
        "user_id": world["user_id"].take(imp["user"]),
        "campaign_id": world["campaign_id"].take(imp["campaign"]),
        "slot_id": world["slot_id"].take(imp["slot"]),
        "device": pa.array(DEVICES).take(imp["device"]),
        "country": pa.array(COUNTRIES).take(world["user_country"][imp["user"]]),
        "floor_price": _fixed(imp["floor"], 4),
        "bid_price": _fixed(imp["bid"], 4),
        "clearing_price": _fixed(imp["clearing"], 4),
    }


def _impression_lines(
    rng: np.random.Generator, world: dict, imp: dict, columns: list[str], rate: float
) -> pa.Array:
    n = len(imp["seq"])
    fields = _impression_fields(world, imp)
    lines = pc.binary_join_element_wise(*(fields[c] for c in columns), ",")
    # The few dirty rows are rebuilt from their own fields, then swapped in by one take.
    kind = rng.choice(len(DIRT) + 1, n, p=[1 - rate] + [rate / len(DIRT)] * len(DIRT))
    at = {name: np.flatnonzero(kind == i + 1) for i, name in enumerate(DIRT)}
    swapped = ("null_user", "text_bid", "bad_bid")
    part = {name: [fields[c].take(at[name]) for c in columns] for name in (*swapped, "truncated")}
    part["null_user"][columns.index("user_id")] = pa.repeat("", len(at["null_user"]))
    part["text_bid"][columns.index("bid_price")] = pa.array(BID_TEXT).take(
        rng.integers(len(BID_TEXT), size=len(at["text_bid"]))
    )
    bid = imp["bid"][at["bad_bid"]]  # out of range: a sign flip, or cents (above the cap)
    part["bad_bid"][columns.index("bid_price")] = _fixed(
        np.where(rng.random(len(bid)) < 0.5, -bid, 50 + 100 * bid), 4
    )
    # Truncated lines keep their first 2..7 fields, as when a writer dies mid-record.
    cut = rng.integers(2, 8, size=len(at["truncated"]))
    truncated = pc.choose(
        cut - 2, *(pc.binary_join_element_wise(*part["truncated"][:k], ",") for k in range(2, 8))
    )
    garbage = pa.array(GARBAGE).take(rng.integers(len(GARBAGE), size=len(at["garbage"])))
    index = _swap_index(n, np.concatenate([at[k] for k in (*swapped, "truncated", "garbage")]))
    # Duplicates: exact copies of chosen rows, written again at a random place in the chunk.
    index = np.insert(index, rng.integers(0, n + 1, size=len(at["duplicate"])), at["duplicate"])
    new = [pc.binary_join_element_wise(*part[k], ",") for k in swapped] + [truncated, garbage]
    return pa.concat_arrays([lines, *new]).take(index)


def _click_lines(
    rng: np.random.Generator, world: dict, clicks: dict, columns: list[str], rate: float
) -> pa.Array:
    fields = {
        "click_id": _hex_ids(clicks["event_seq"], world["salts"][1]),
        "event_id": _hex_ids(clicks["event_seq"], world["salts"][0]),
        "click_ts": _timestamps(clicks["ts"]),
    }
    pairs = [pc.binary_join_element_wise(f'"{c}":"', fields[c], '"', "") for c in columns]
    lines = pc.binary_join_element_wise("{", pc.binary_join_element_wise(*pairs, ","), "}", "")
    # Malformed JSON: a record cut off halfway.
    broken = np.flatnonzero(rng.random(len(lines)) < rate / 2)
    cut = pc.utf8_slice_codeunits(lines.take(broken), 0, 45)
    return pa.concat_arrays([lines, cut]).take(_swap_index(len(lines), broken))


def _swap_index(n: int, at: np.ndarray) -> np.ndarray:
    """Take indices that read rows n, n+1, ... (appended replacements) in place of rows at."""
    index = np.arange(n)
    index[at] = n + np.arange(len(at))
    return index


def _hex_ids(seq: np.ndarray, salt: np.uint64) -> pa.Array:
    """16 hex digits, unique per seq: adding, odd multipliers and xor-shifts are bijections."""
    x = seq.astype(np.uint64) + salt
    for multiplier in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9):
        x = x * np.uint64(multiplier)
        x ^= x >> np.uint64(31)
    digits = _HEX_PAIRS[x.astype(">u8").view(np.uint8)]  # two hex digits per byte
    return pa.array(digits.view("S16")).cast(pa.string())


_HEX_PAIRS = np.frombuffer("".join(f"{b:02x}" for b in range(256)).encode(), dtype=np.uint16)


def _epoch(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(seconds, pa.timestamp("s")), pa.string())  # YYYY-MM-DD HH:MM:SS


def _fixed(x: np.ndarray, decimals: int) -> pa.Array:
    """Numbers as text with fixed decimals (1.2000), exact where float printing is not."""
    units = np.round(np.abs(x) * 10**decimals).astype(np.int64)
    whole = pc.cast(pa.array(units // 10**decimals), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(units % 10**decimals), pa.string()), decimals, "0")
    text = pc.binary_join_element_wise(whole, frac, ".")
    if (x < 0).any():
        text = pc.if_else(pa.array(x < 0), pc.binary_join_element_wise("-", text, ""), text)
    return text


def _names(prefix: str, n: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), len(str(n - 1)), "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _write_lines(out, lines: pa.Array) -> None:
    """Append lines to an open binary file: one join in Arrow, one write."""
    if len(lines):
        whole = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
        out.write(pc.binary_join(whole, "\n")[0].as_buffer())
        out.write(b"\n")
