"""Config: params.yaml stays the composition of conf/, and bad values name their key."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel

from ctrpipe import config, params
from ctrpipe.data.settings import Column, Data, Table
from ctrpipe.errors import ConfigError
from ctrpipe.model import settings
from ctrpipe.monitoring.settings import Monitor, Simulate
from ctrpipe.release.settings import Gate
from ctrpipe.serving.settings import Serve
from tests.conftest import ROOT, params_dict

pytestmark = pytest.mark.unit


def test_committed_params_equal_the_composition_of_conf():
    assert params.is_current(ROOT), "params.yaml is stale: run `make params` and commit it"


def test_compose_applies_hydra_overrides(tmp_path):
    overrides = ["data.source.synthetic.rows=1234", "spark=cluster"]
    loaded = config.load(params.compose(tmp_path / "p.yaml", overrides, root=ROOT))
    assert loaded.section("data", Data).source.synthetic.rows == 1234
    assert loaded.section("spark", config.Spark).master.startswith("spark://")


def test_large_preset_only_changes_the_size(tmp_path):
    out = params.compose(tmp_path / "p.yaml", ["data=large"], root=ROOT)
    large = config.load(out).section("data", Data)
    default = config.parse(params_dict()).section("data", Data)
    assert large.source.synthetic.rows == 10_000_000
    assert large.model_copy(update={"source": default.source}) == default


def synthetic(**changes) -> dict:
    return {"source": {"synthetic": changes}}


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            synthetic(rows=-5),
            r"data.source.synthetic.rows: Input should be greater than 0 \(got -5\)",
        ),
        (synthetic(rows="many"), r"data.source.synthetic.rows: Input should be a valid integer"),
        ({"source": "ftp"}, r"data.source: expected `files` or `{synthetic: {...}}` \(got 'ftp'\)"),
        ({"sample": {"negative_rate": 0}}, r"data.sample.negative_rate: .*greater than 0"),
        (
            {"split": {"golden": {"start": "2026-01-15", "end": "2026-01-14"}}},
            r"data.split.golden: .*must be after",
        ),
        (
            {"split": {"validation_fraction": 0.2}},
            r"data.split.validation_fraction: not used by a split by time",
        ),
        ({"time": "user_id"}, r"data.time: column 'user_id' must be a timestamp, a date or an int"),
        ({"time": "nope"}, r"data.time: table 'impressions' declares no column 'nope'"),
        ({"base": "orders"}, r"data.base: unknown table 'orders'"),
        ({"features": {"numeric": ["nope"]}}, r"data.features.numeric: .* column 'nope'"),
        (
            {"features": {"numeric": ["device"]}},
            r"data.features.numeric: column 'device' has type string",
        ),
        (
            {"joins": [{"table": "slots", "key": "user_id"}]},
            r"data.joins.0.key: table 'slots' must declare key: \['user_id'\] \(its own key\), so",
        ),
        ({"history": {"keys": ["nope"]}}, r"data.history.keys: .*'nope'"),
        ({"slices": ["browser"]}, r"data.slices: 'browser' is not a feature"),
        (
            {"label": {"column": "device"}},
            r"data.label: key, time and window_seconds belong to a label from events",
        ),
        (
            {"tables": {"clicks": {"columns": {"click_ts": {"type": "datetime"}}}}},
            r"data.tables.clicks.columns.click_ts.type: Input should be",
        ),
        (
            {"quality": {"max_bad_fraction": 2}},
            r"data.quality.max_bad_fraction: .*less than or equal to 1",
        ),
        ({"typo": 1}, r"data.typo: Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=r"^params.yaml: " + message):
        config.parse(params_dict(data=changes)).section("data", Data)


def test_unreadable_or_invalid_params_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        config.load(bad)


def test_unknown_file_extension_asks_for_a_format():
    table = Table(path="x.txt", columns={"a": Column(type="string")})
    with pytest.raises(ConfigError, match=r"'x.txt': cannot tell its format"):
        table.file_format


@pytest.mark.parametrize(
    "group, change, message",
    [
        ("sweep", {"n_trials": 0}, r"sweep.n_trials: Input should be greater than 0 \(got 0\)"),
        ("sweep", {"n_trials": -3}, r"sweep.n_trials: Input should be greater than 0"),
        (
            "sweep",
            {"space": {"eta": {"type": "float", "low": 1, "high": 0.1}}},
            r"sweep.space.eta: a float dimension needs low <= high",
        ),
        (
            "sweep",
            {"space": {"eta": {"type": "float", "low": 0, "high": 1, "log": True}}},
            r"sweep.space.eta: a log-scaled dimension needs low > 0",
        ),
        (
            "sweep",
            {"space": {"booster": {"type": "categorical"}}},
            r"sweep.space.booster: a categorical dimension needs a non-empty 'choices' list",
        ),
        ("sweep", {"space": {"eta": {"type": "normal"}}}, r"sweep.space.eta.type: Input should be"),
        ("model", {"num_boost_round": 0}, r"model.num_boost_round: Input should be greater than 0"),
        (
            "evaluate",
            {"calibration_bins": 1},
            r"evaluate.calibration_bins: .*greater than or equal to 2",
        ),
    ],
)
def test_model_groups_name_the_bad_key(group, change, message):
    raw = params_dict()
    raw[group] = {**raw[group], **change}
    if group == "sweep" and "space" in change:
        raw[group]["space"] = change["space"]
    schemas = {"sweep": settings.Sweep, "model": settings.Model, "evaluate": settings.Evaluate}
    with pytest.raises(ConfigError, match=r"^params.yaml: " + message):
        config.parse(raw).section(group, schemas[group])


def test_empty_search_space_is_refused():
    raw = params_dict()
    raw["sweep"]["space"] = {}
    with pytest.raises(ConfigError, match=r"sweep.space: Dictionary should have at least 1 item"):
        config.parse(raw).section("sweep", settings.Sweep)


def test_a_group_error_names_the_params_file_it_came_from(tmp_path):
    """A stage run with --params other.yaml names other.yaml, not params.yaml."""
    raw = params_dict()
    raw["sweep"]["n_trials"] = 0
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"^{path}: sweep.n_trials: "):
        config.load(path).section("sweep", settings.Sweep)


# Fields whose default is a convention of the schema, not a tuned value conf/ holds.
CONVENTIONS = {"above"}  # a limit's direction: which way is bad


def defaults_against(schema, values: dict, key: str) -> list[str]:
    """Every default of `schema` that conf's `values` lack or hold otherwise."""
    problems = []
    for name, field in schema.model_fields.items():
        where, nested = f"{key}.{name}", field.annotation
        if name in CONVENTIONS:
            continue
        if name not in values:
            if not field.is_required():
                problems.append(f"{where}: the schema's default is not in conf/")
        elif isinstance(nested, type) and issubclass(nested, BaseModel):
            problems += defaults_against(nested, values[name], where)
        elif (
            not field.is_required() and field.get_default(call_default_factory=True) != values[name]
        ):
            problems.append(
                f"{where}: the schema says {field.get_default()!r}, conf/ {values[name]!r}"
            )
    return problems


# The group files whose values the schema defaults repeat. A project adds files of its
# own beside them and chooses those in conf/config.yaml, without breaking the check.
SHIPPED = {
    "spark": "local",
    "model": "xgboost",
    "sweep": "tpe",
    "evaluate": "default",
    "package": "default",
    "gate": "default",
    "serve": "default",
    "monitor": "default",
    "simulate": "default",
}


def test_every_schema_default_is_the_value_conf_holds(tmp_path):
    """Values live in conf/: a schema default differs from none of the shipped group
    files' values, and they spell every one, so code that builds a group without
    params.yaml gets conf's values."""
    choices = [f"{group}={name}" for group, name in SHIPPED.items()]
    raw = config.read_raw(params.compose(tmp_path / "params.yaml", choices, root=ROOT))
    groups = {
        "spark": config.Spark,
        "model": settings.Model,
        "sweep": settings.Sweep,
        "evaluate": settings.Evaluate,
        "package": settings.Package,
        "gate": Gate,
        "serve": Serve,
        "monitor": Monitor,
        "simulate": Simulate,
    }
    problems = [
        p for name, schema in groups.items() for p in defaults_against(schema, raw[name], name)
    ]
    assert not problems, "; ".join(problems)
