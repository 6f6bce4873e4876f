"""A raw record in, the model's features out, from a snapshot: what generate computes for
a row, done per request in Python.

The values are generate's: a join's columns come from its table as the join read it,
a history key's aggregates from the snapshot's table of them (an unknown value gets
the prior, as a first sighting did in training; a null key gets nulls), the time
features from the record's time in UTC, and every value is cast as select_features
casts it (categorical to text as Spark writes it, numeric to double).

A good record takes a handful of C calls per step (`features_of`); only a refused one
walks its fields one by one to say which is wrong (`problem`), as payload.py does.
Many records that share most of their fields (a candidate batch: one impression, many
ads) go through `columns_of`, which runs each step once for what they share and once
per record only for what depends on a field that varies, giving columns of the same
values `features_of` gives each record.
"""

from __future__ import annotations

import copy
import datetime as dt
import operator
from itertools import repeat
from typing import Any

import pyarrow as pa

from ctrpipe.errors import DataError
from ctrpipe.online.store import Snapshot, history_file

UTC = dt.timezone.utc
NONE = type(None)
# JSON types a raw field of each declared type accepts (bool is not an int here).
JSON_TYPES = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "double": (int, float),
    "boolean": (bool,),
    "timestamp": (str,),
    "date": (str,),
}
NULLS = (None, None, None)  # a null key's aggregates
MISSING = object()  # in a column: a record without the field (a candidate, no context)
# Spark's hour() and dayofweek() (Sunday 1) of a time in Unix seconds, UTC; 1 January
# 1970 was a Thursday (5).
TIME_FEATURES = {
    "hour": lambda s: float(int(s // 3600 % 24)),
    "day_of_week": lambda s: float(int(s // 86400 + 4) % 7 + 1),
}


def _text(value) -> str:
    """A value as Spark casts it to string (for the types a categorical may have)."""
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


class FieldError(ValueError):
    """A raw record the lookup refuses: the field and why."""

    def __init__(self, field: str | None, message: str, row: int | None = None):
        super().__init__(message)
        self.field, self.message, self.row = field, message, row


class Lookup:
    """A snapshot's tables as dictionaries, and the recipe that turns a raw record into
    the model's feature row."""

    def __init__(self, snapshot: Snapshot):
        s = snapshot.spec
        h = s["history"]
        self.snapshot = snapshot
        self.fields = s["fields"]
        self.request = s["request"]
        self.time, self.time_unit = s["time"], s["time_unit"]
        self.joins = s["joins"]
        self.history = h["keys"]
        self.history_columns = h["columns"]
        # The prior as add_history computes it for a value with nothing seen: (0 + alpha)
        # / (0 + alpha + beta), in the same order, so the float is the same.
        self.prior = (0.0, (0 + h["prior_alpha"]) / (0 + h["prior_alpha"] + h["prior_beta"]), 0.0)
        self.categorical = set(s["features"]["categorical"])
        self.features = [*s["features"]["categorical"], *s["features"]["numeric"]]
        self.time_features = s["features"]["time"]
        self.dims = [self._dimension(j) for j in self.joins]
        self.values = {key: self._history(key) for key in self.history}
        # The fast path's pieces: which fields, of which JSON types, and which casts.
        self._known = frozenset(self.fields)
        self._get = operator.itemgetter(*self.request) if self.request else lambda r: ()
        self._accepts = [self._accepted(name) for name in self.request]
        self._casts = self._feature_casts()
        self._recipe()

    def _recipe(self) -> None:
        """Where each value of a record's flat tuple comes from, fixed at load: the
        request's fields, then each join's columns, then each key's aggregates, then the
        time features. A record then takes a few C calls per join and key."""
        flat = list(self.request)

        def at(name: str) -> int:
            return flat.index(name)

        self._joins = []
        for join, table in zip(self.joins, self.dims, strict=True):
            keys = [at(k) for k in join["base_keys"]]
            key = keys[0] if len(keys) == 1 else operator.itemgetter(*keys)
            self._joins.append((key, table, (None,) * len(join["columns"])))
            flat += join["columns"]
        self._keys = []
        for key in self.history:
            self._keys.append((at(key), key))
            flat += self.history_columns[key]
        flat += self.time_features
        self._pick = operator.itemgetter(*(at(name) for name in self.features), 0)  # a tuple
        self._time_at = at(self.time) if self.time else None

    def _dimension(self, join: dict) -> dict:
        table = self.snapshot.tables[join["file"]].to_pydict()
        keys = [table[k] for k in join["base_keys"]]
        values = list(zip(*[table[c] for c in join["columns"]], strict=True))
        if len(keys) == 1:
            return dict(zip(keys[0], values, strict=True))
        return dict(zip(zip(*keys, strict=True), values, strict=True))

    def _history(self, key: str) -> dict:
        table = self.snapshot.tables[history_file(key)].to_pydict()
        columns = [table[c] for c in self.history_columns[key]]
        return dict(zip(table[key], zip(*columns, strict=True), strict=True))

    def _accepted(self, name: str) -> frozenset:
        declared = self.fields[name]
        nullable = declared["nullable"] and name != self.time
        return frozenset((*JSON_TYPES[declared["type"]], *((NONE,) if nullable else ())))

    def _feature_casts(self) -> list[tuple[str, Any]]:
        """(feature, cast) for the features whose values need one to be what
        select_features makes: text for a categorical, a double for a numeric."""
        kinds = {name: f["type"] for name, f in self.fields.items()}
        for join in self.joins:
            schema = self.snapshot.tables[join["file"]].schema
            kinds |= {c: _kind(schema.field(c).type) for c in join["columns"]}
        casts = []
        for name in self.features:
            kind = kinds.get(name, "double")  # the time and history features are doubles
            if name in self.categorical:
                if kind not in ("string", "int", "long", "boolean"):
                    raise DataError(
                        f"{self.snapshot.path}: categorical feature '{name}' is of type "
                        f"{kind}, which raw requests cannot serve (send the features instead)"
                    )
                if kind != "string":
                    casts.append((name, _text))
            elif kind != "double" or name in self.fields:  # JSON may give 2 for 2.0
                casts.append((name, float))
        return casts

    def at(self, values: dict[str, dict]) -> Lookup:
        """This lookup with other history tables, {key: {value: aggregates}}: the skew
        check's snapshot cut at one row's time."""
        other = copy.copy(self)
        other.values = values
        return other

    def check_model(self, names: list[str], source: str) -> None:
        """The snapshot must make exactly the model's features; a DataError if not."""
        if set(self.features) != set(names):
            missing = sorted(set(names) - set(self.features))
            extra = sorted(set(self.features) - set(names))
            raise DataError(
                f"{source}: the snapshot makes other features than the model takes "
                f"(missing {missing}, extra {extra})"
            )

    def features_of(self, record: Any) -> dict:
        """The model's feature row for one raw record; a FieldError naming the field."""
        if type(record) is not dict or not record.keys() <= self._known:
            raise self.problem(record)
        try:
            got = self._get(record)
        except KeyError:
            raise self.problem(record) from None
        if len(self.request) == 1:
            got = (got,)
        if not all(map(frozenset.__contains__, self._accepts, map(type, got))):
            raise self.problem(record)
        flat = got
        for key, table, nulls in self._joins:
            flat += table.get(flat[key] if type(key) is int else key(flat)) or nulls
        for at, key in self._keys:
            value = flat[at]
            flat += NULLS if value is None else self.values[key].get(value, self.prior)
        if self._time_at is not None:
            seconds = self._time(got[self._time_at], self.time)
            flat += tuple(TIME_FEATURES[name](seconds) for name in self.time_features)
        row = dict(zip(self.features, self._pick(flat)))
        for name, cast in self._casts:
            if (value := row[name]) is not None:
                try:
                    row[name] = cast(value)
                except OverflowError:  # an int past float64's range
                    raise FieldError(name, "number out of range") from None
        return row

    def columns_of(self, shared: dict, columns: dict, n: int) -> tuple[dict, dict]:
        """The features of n records that share the fields in `shared` and take the others
        from `columns` (n values each): (the features they share, a column per feature
        that varies), each record's values the ones features_of gives it. A join or a
        history key that reads shared fields only is looked up once, the time features
        of a shared time computed once; the rest once per record, in C where it can be.
        A FieldError naming the field, and the record (row) when it is one record's."""
        if not (shared.keys() <= self._known and columns.keys() <= self._known):
            raise self.columns_problem(shared, columns, n)
        one, many = {}, {}  # a field's or a step's value: shared, or a column of n
        for name, accepts in zip(self.request, self._accepts, strict=True):
            if name in columns:
                if not set(map(type, columns[name])) <= accepts:
                    raise self.columns_problem(shared, columns, n)
                many[name] = columns[name]
            elif name in shared and type(shared[name]) in accepts:
                one[name] = shared[name]
            else:
                raise self.columns_problem(shared, columns, n)
        for join, table in zip(self.joins, self.dims, strict=True):
            self._join(one, many, join, table, n)
        for key in self.history:
            self._aggregates(one, many, key)
        if self._time_at is not None:
            self._time_features(one, many)
        shared_features = {name: one[name] for name in self.features if name not in many}
        varying = {name: many[name] for name in self.features if name in many}
        for name, cast in self._casts:
            if name in varying:
                varying[name] = _cast_column(name, cast, varying[name])
            elif (value := shared_features[name]) is not None:
                try:
                    shared_features[name] = cast(value)
                except OverflowError:  # an int past float64's range
                    raise FieldError(name, "number out of range") from None
        return shared_features, varying

    def _join(self, one: dict, many: dict, join: dict, table: dict, n: int) -> None:
        keys, nulls = join["base_keys"], (None,) * len(join["columns"])
        if all(k in one for k in keys):
            key = one[keys[0]] if len(keys) == 1 else tuple(one[k] for k in keys)
            _put(one, many, join["columns"], table.get(key) or nulls)
            return
        key_columns = [many[k] if k in many else repeat(one[k], n) for k in keys]
        keyed = key_columns[0] if len(keys) == 1 else zip(*key_columns)
        # A found value is a tuple of the join's columns, empty only when nulls is too:
        # get's default is features_of's `get(...) or nulls`.
        _put_columns(many, one, join["columns"], list(map(table.get, keyed, repeat(nulls))))

    def _aggregates(self, one: dict, many: dict, key: str) -> None:
        values, names = self.values[key], self.history_columns[key]
        if key in one:
            value = one[key]
            _put(one, many, names, NULLS if value is None else values.get(value, self.prior))
            return
        column = many[key]
        found = list(map(values.get, column, repeat(self.prior)))
        if None in column:  # a null key gets nulls, not the prior
            found = [NULLS if v is None else got for v, got in zip(column, found)]
        _put_columns(many, one, names, found)

    def _time_features(self, one: dict, many: dict) -> None:
        name = self.time
        if name in one:
            seconds = self._time(one[name], name)
            _put(
                one,
                many,
                self.time_features,
                [TIME_FEATURES[f](seconds) for f in self.time_features],
            )
            return
        seconds = []
        for i, value in enumerate(many[name]):
            try:
                seconds.append(self._time(value, name))
            except FieldError as exc:
                exc.row = i
                raise
        columns = [list(map(TIME_FEATURES[f], seconds)) for f in self.time_features]
        for feature, column in zip(self.time_features, columns, strict=True):
            if feature not in one and feature not in many:
                many[feature] = column

    def columns_problem(self, shared: dict, columns: dict, n: int) -> FieldError:
        """Why columns_of refuses its input, found value by value (the slow path): an
        unknown or missing field, a bad shared value, then the first bad record."""
        for name in (*shared, *columns):
            if name not in self.fields:
                return self._unknown(name)
        for name in self.request:
            if name in columns:
                continue
            if name not in shared:
                return self._missing(name)
            message = self._value_problem(name, shared[name])
            if message:
                return FieldError(name, message)
        varying = [name for name in self.request if name in columns]
        for i in range(n):
            for name in varying:
                value = columns[name][i]
                if value is MISSING:
                    return self._missing(name, i)
                message = self._value_problem(name, value)
                if message:
                    return FieldError(name, message, i)
        raise AssertionError("raw columns refused by the fast path but not explained")

    def problem(self, record: Any) -> FieldError:
        """Why `record` is refused, found field by field (the slow, exact path)."""
        if type(record) is not dict:
            return FieldError(None, "each row must be an object of field: value")
        for name in record:
            if name not in self.fields:
                return self._unknown(name)
        for name in self.request:
            if name not in record:
                return self._missing(name)
            message = self._value_problem(name, record[name])
            if message:
                return FieldError(name, message)
        raise AssertionError("a raw record refused by the fast path but not explained")

    def _unknown(self, name: str) -> FieldError:
        base = self.snapshot.spec["base"]
        return FieldError(name, f"unknown field: not a column of the base table '{base}'")

    def _missing(self, name: str, row: int | None = None) -> FieldError:
        what = "the time" if name == self.time else "a field the features need"
        return FieldError(name, f"missing: {what} (send null for a missing value)", row)

    def _value_problem(self, name: str, value) -> str | None:
        declared = self.fields[name]
        if value is None and NONE not in self._accepted(name):
            return "null, but the column is not nullable"
        if value is not None and type(value) not in JSON_TYPES[declared["type"]]:
            return f"expected {declared['type']}; got {type(value).__name__}"
        return None

    def _time(self, value, name: str) -> float:
        """The record's time in Unix seconds, read as generate reads the column (a time
        without a zone is UTC, the Spark session's zone)."""
        kind = self.fields[name]["type"]
        try:
            if self.time_unit == "seconds":
                return dt.datetime.fromtimestamp(value, UTC).timestamp()  # checks the range
            if self.time_unit == "year":
                return dt.datetime(value, 1, 1, tzinfo=UTC).timestamp()
            if kind == "date":
                return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), UTC).timestamp()
            parsed = dt.datetime.fromisoformat(value)
        except (ValueError, OverflowError, OSError) as exc:
            raise FieldError(name, f"not a time ({exc})") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _put(one: dict, many: dict, names: list[str], values) -> None:
    """A step's shared values under their names; a name met earlier keeps its value, as
    features_of's flat tuple gives the first of two."""
    for name, value in zip(names, values, strict=True):
        if name not in one and name not in many:
            one[name] = value


def _put_columns(many: dict, one: dict, names: list[str], rows: list[tuple]) -> None:
    """A step's per-record tuples as a column per name (a name met earlier kept)."""
    columns = zip(*rows) if rows else [()] * len(names)
    for name, column in zip(names, columns, strict=True):
        if name not in one and name not in many:
            many[name] = column


def _cast_column(name: str, cast, column) -> list:
    """features_of's cast of each non-null value of a column."""
    try:
        if None in column:
            return [None if v is None else cast(v) for v in column]
        return list(map(cast, column))
    except OverflowError:  # an int past float64's range
        row = next(i for i, v in enumerate(column) if v is not None and _overflows(cast, v))
        raise FieldError(name, "number out of range", row) from None


def _overflows(cast, value) -> bool:
    try:
        cast(value)
    except OverflowError:
        return True
    return False


def _kind(arrow_type: pa.DataType) -> str:
    """A snapshot column's Arrow type as the column type a table declares. Unlike
    infer.arrow_type (which drafts a config and calls anything else text), a type no
    declaration has keeps its own name, so a cast can refuse it."""
    for test, kind in (
        (pa.types.is_string, "string"),
        (pa.types.is_integer, "long"),
        (pa.types.is_floating, "double"),
        (pa.types.is_boolean, "boolean"),
    ):
        if test(arrow_type):
            return kind
    return str(arrow_type)
