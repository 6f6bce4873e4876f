"""What a client may send to POST /predict, checked against the package's FeatureSchema
and encoded straight into the model's float32 matrix.

The contract, as the service documents it:

    body     {"rows": [row, ...]} or {"row": row}; optionally "ids": [id, ...] (one per
             row) or "id": id, strings the request log keeps so that delayed labels
             (clicks) can be joined to the logged rows; nothing else at the top level
    row      an object with exactly the model's features as keys (`FeatureSchema.names`):
             a missing key and an unknown key are both refused, so a typo such as
             "flor_price" is an error instead of a silently missing feature
    numeric  a JSON number, or null for a missing value. Strings and booleans are
             refused: training read these columns as numbers, and "1.5" or true would
             only be guesses at what the client meant.
    categorical
             a JSON string, or null for a missing value. A string outside the vocabulary
             gets the feature's `other` code, exactly as `FeatureSchema.encode` does for
             training and validation rows (an unseen campaign is an input the model
             knows). Numbers and booleans are refused: the training values were strings,
             and a client sending 7 for "7" (or for "cmp007") is more likely a bug.
    missing  null. The schema encodes a missing value as NaN, but NaN, Infinity and
             -Infinity are not JSON (RFC 8259) although Python's parser accepts them;
             they are refused with a message pointing at null. A number that would be
             infinite as float32 (beyond about 3.4e38) is refused too, since the model
             computes in float32 and never saw one.

Statuses: 400 for a body that is not UTF-8 JSON or not of the shape above, 413 for more
rows than the batch limit, 422 for a bad field. Every refusal names the field (or the
top-level key) and the row index where there is one.

Encoding has a fast path that only tells good rows from bad ones, and an exact path
(`explain`) that runs only for a bad request and finds its first error. Keeping the
reasons out of the fast path is what makes a single row cost about 3 µs here.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import warnings
from itertools import repeat

import numpy as np

from ctrpipe.model.encoding import FeatureSchema

NONE = type(None)
NUMERIC_TYPES = frozenset({float, int, NONE})  # bool is not int here: type(True) is bool
CATEGORICAL_TYPES = frozenset({str, NONE})
# A float32 infinity in the encoded row can only come from a number out of float32 range.
_INF_BYTES = (np.float32(np.inf).tobytes(), np.float32(-np.inf).tobytes())
# Row by row costs about 3 µs a row; column by column about 2 µs a row but about 15 µs
# of fixed cost, so batches of this many rows or more go column by column.
COLUMNWISE_FROM = 32
# A number past float32's range becomes inf when cast, with a RuntimeWarning; the inf
# is refused with a 422, so the warning is noise. np.errstate would silence it too, but
# costs 1.2 µs a request; this filter only matches casts in this module.
warnings.filterwarnings(
    "ignore", message="overflow encountered in cast", category=RuntimeWarning, module=__name__
)
SHAPE = 'the body must be {"rows": [{feature: value, ...}, ...]} or {"row": {...}}'


class RequestError(Exception):
    """A request the service refuses: the HTTP status and the JSON body it answers."""

    def __init__(self, status: int, message: str, field: str | None = None, row: int | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.row = status, message, field, row

    def body(self) -> dict:
        return {"error": self.message, "field": self.field, "row": self.row}


class NonFinite(str):
    """A NaN, Infinity or -Infinity token: kept as a marker while parsing, so that the
    refusal can name the field it was in instead of failing the whole body."""


def json_value(value):
    """A value as a client writes it in JSON: a time as ISO 8601 text, NaN as null (the
    service refuses NaN)."""
    if isinstance(value, dt.date):  # a datetime is a date too
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def parse(body: bytes):
    """The JSON document in `body`; a 400 RequestError for anything that is not one."""
    try:
        text = body.decode("utf-8")  # strict: RFC 8259 JSON is UTF-8, never UTF-16 or 32
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=NonFinite)
    except RecursionError:
        raise RequestError(400, "the body nests too deeply to be a request") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None


def rows_of(doc, max_batch: int) -> list:
    """The rows a parsed body asks about; 400 for another shape, 413 past `max_batch`."""
    if type(doc) is not dict:
        raise RequestError(400, f"{SHAPE}; got {kind(doc)}")
    extra = [key for key in doc if key not in ("rows", "row", "ids", "id")]
    if extra:
        raise RequestError(400, f"unknown top-level key; {SHAPE}", field=extra[0])
    if ("rows" in doc) == ("row" in doc):
        raise RequestError(400, f"{SHAPE}; got {'both' if 'row' in doc else 'neither'}")
    for ids, rows in (("ids", "row"), ("id", "rows")):
        if ids in doc and rows in doc:
            raise RequestError(
                400, f"'{ids}' goes with '{'rows' if ids == 'ids' else 'row'}'", field=ids
            )
    if "row" in doc:
        return [doc["row"]]
    rows = doc["rows"]
    if type(rows) is not list:
        raise RequestError(400, f"'rows' must be a list of objects; got {kind(rows)}", field="rows")
    if len(rows) > max_batch:
        raise RequestError(413, f"{len(rows)} rows; at most {max_batch} per request", field="rows")
    return rows


def ids_of(doc: dict, n: int) -> list | None:
    """The client's ids of the rows (`"ids": [...]` beside "rows", `"id"` beside "row"),
    which the request log keeps so delayed labels can be joined to it; None if absent.
    Call after rows_of, which checked the shape."""
    if "id" in doc:
        ids = [doc["id"]]
    elif "ids" in doc:
        ids = doc["ids"]
        if type(ids) is not list or len(ids) != n:
            raise RequestError(400, f"'ids' must be a list with one id per row ({n})", field="ids")
    else:
        return None
    for i, value in enumerate(ids):
        if type(value) is not str and value is not None:
            raise RequestError(
                422,
                f"an id must be a string or null; got {kind(value)}",
                field="ids" if "ids" in doc else "id",
                row=i,
            )
    return ids


class RowEncoder:
    """Turns request rows into the matrix `FeatureSchema.encode` would make of the same
    values as a table: the same columns, codes, `other` codes and NaN for missing."""

    def __init__(self, schema: FeatureSchema):
        self.schema = schema
        self.names = schema.names
        self.numeric = list(schema.numeric)
        self.n_numeric = len(self.numeric)
        self._numeric = _tuple_getter(self.numeric)
        self._categorical = _tuple_getter(list(schema.categorical))
        self._column = [operator.itemgetter(name) for name in self.names]
        # None maps to NaN in the same lookup that maps values to codes: one C call a row.
        self._codes = [
            {**{value: float(code) for code, value in enumerate(vocab)}, None: float("nan")}
            for vocab in schema.categorical.values()
        ]
        self._other = [float(schema.other_code(name)) for name in schema.categorical]
        self.known = frozenset(self.names)

    def encode(self, rows: list) -> np.ndarray:
        """A float32 matrix of len(rows) x len(names); a RequestError for the first bad
        row and field, in row order and then the schema's feature order."""
        if not rows:
            return np.empty((0, len(self.names)), dtype=np.float32)
        try:
            x = self._by_column(rows) if len(rows) >= COLUMNWISE_FROM else self._by_row(rows)
        except (_Refused, KeyError, TypeError, ValueError, OverflowError, RuntimeWarning):
            # RuntimeWarning: the overflow warning, should warnings be made errors
            raise self.explain(rows) from None
        if _has_infinity(x):
            raise self.explain(rows)
        return x

    def _by_row(self, rows: list) -> np.ndarray:
        """The single-row path: a handful of C calls a row, no Python loop per field."""
        k, num, cat = len(self.names), self._numeric, self._categorical
        encoded = []
        for row in rows:
            if type(row) is not dict or len(row) != k:
                raise _Refused
            numbers, labels = num(row), cat(row)  # KeyError for a missing feature
            if not (
                set(map(type, numbers)) <= NUMERIC_TYPES
                and set(map(type, labels)) <= CATEGORICAL_TYPES
            ):
                raise _Refused
            encoded.append(numbers + tuple(map(dict.get, self._codes, labels, self._other)))
        return np.array(encoded, dtype=np.float32)

    def _by_column(self, rows: list) -> np.ndarray:
        """The batch path: one pass over the rows per feature, each pass in C."""
        k = len(self.names)
        if set(map(type, rows)) != {dict} or set(map(len, rows)) != {k}:
            raise _Refused  # with every feature present, an equal length means no extra key
        x = np.empty((len(rows), k), dtype=np.float32)
        for j, getter in enumerate(self._column):
            values = list(map(getter, rows))
            if j < self.n_numeric:
                if not set(map(type, values)) <= NUMERIC_TYPES:
                    raise _Refused
                x[:, j] = values
            else:
                if not set(map(type, values)) <= CATEGORICAL_TYPES:
                    raise _Refused
                c = j - self.n_numeric
                x[:, j] = list(map(self._codes[c].get, values, repeat(self._other[c])))
        return x

    def explain(self, rows: list) -> RequestError:
        """The first error in `rows`, found field by field (the slow, exact path)."""
        for i, row in enumerate(rows):
            problem = self.row_problem(row)
            if problem:
                status, message, field = problem
                return RequestError(status, message, field=field, row=i)
        # The fast path refused what this path accepts: a bug here, so a 500.
        raise AssertionError("request refused by the fast encoder but not explained")

    def row_problem(self, row) -> tuple[int, str, str | None] | None:
        if type(row) is not dict:
            return 400, f"each row must be an object of feature: value; got {kind(row)}", None
        for name in self.names:
            if name not in row:
                return 422, "missing feature (send null for a missing value)", name
        for key in row:
            if key not in self.known:
                return 422, "unknown field: not one of the model's features", key
        for name in self.names:
            problem = value_problem(row[name], name in self.schema.categorical)
            if problem:
                return 422, problem, name
        return None


def value_problem(value, categorical: bool) -> str | None:
    """Why `value` cannot be this feature's input, or None when it can."""
    if isinstance(value, NonFinite):
        return f"{value} is not JSON; send null for a missing value"
    if categorical:
        if type(value) in CATEGORICAL_TYPES:
            return None
        return f"expected a string (or null for missing); got {kind(value)}"
    if type(value) not in NUMERIC_TYPES:
        return f"expected a number (or null for missing); got {kind(value)}"
    if value is not None and not _fits_float32(value):
        return "number out of float32 range (about ±3.4e38)"
    return None


def _fits_float32(value: int | float) -> bool:
    try:
        with np.errstate(over="ignore"):
            return bool(np.isfinite(np.float32(value)))
    except OverflowError:  # an int past float64's range
        return False


def _tuple_getter(names: list[str]):
    """operator.itemgetter, but a tuple for one name (or none) too."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    return lambda row: tuple(row[name] for name in names)


def _has_infinity(x: np.ndarray) -> bool:
    """np.isinf(x).any() costs 1.4 µs on one row, a tenth of the latency budget; looking
    for infinity's bytes costs 0.4 µs. The bytes can also match across two neighbouring
    values, so a match is confirmed with isinf."""
    raw = x.tobytes() if x.size < 4096 else None
    if raw is not None and _INF_BYTES[0] not in raw and _INF_BYTES[1] not in raw:
        return False
    return bool(np.isinf(x).any())


def kind(value) -> str:
    """A JSON type name for messages; never the value itself, which may be huge."""
    if isinstance(value, NonFinite):
        return str(value)
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        NONE: "null",
    }.get(type(value), "a value")


class _Refused(Exception):
    """The fast path saw something it does not accept; `explain` says what."""
