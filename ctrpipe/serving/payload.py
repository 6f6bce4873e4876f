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

A candidate batch (an ad server scoring many ads for one impression) is another body:

    body     {"context": {field: value, ...}, "candidates": [{field: value, ...}, ...]};
             optionally "ids": [id, ...], one per candidate. The context holds what the
             candidates share once; a candidate's field overrides the context's. The
             answer is one prediction per candidate, in order, equal to sending each
             merged row (context | candidate) as {"row": ...}. "candidates" must be a
             non-empty list of objects; a context field that a candidate sets to another
             JSON type (null goes with any) is a 400 naming the field, since one of the
             two is a client's mistake.

Statuses: 400 for a body that is not UTF-8 JSON or not of the shape above, 413 for more
rows than the batch limit, 422 for a bad field. Every refusal names the field (or the
top-level key) and the row index where there is one.

Encoding has a fast path that only tells good rows from bad ones, and an exact path
(`explain`) that runs only for a bad request and finds its first error. Keeping the
reasons out of the fast path is what makes a single row cost about 3 µs here.
`RowEncoder.encode_columns` does the same for columns (V2 tensors, candidate batches):
values shared by every row once, the others a column at a time, each in one or two C
passes, to the same float32 values `encode` gives the same rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import struct
import warnings
from itertools import chain, repeat

import numpy as np

from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.online.lookup import MISSING  # a candidate without a field no context gives

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
CANDIDATES = 'the body must be {"context": {field: value, ...}, "candidates": [{...}, ...]}'
CANDIDATE_KEYS = ("context", "candidates", "ids")
# A float32 column is packed from Python numbers by struct: one C pass that refuses
# strings and None, rounds as numpy does (double, then float32) and is 3-4x faster than
# numpy's own conversion of a list.
_NAN = float("nan")
_NAN_FOR_NONE = {None: _NAN}
_UNSEEN = b"\xff\xff\xff\xff"  # a NaN no code or missing value encodes to: "look again"
_UNSEEN_CODE = 0xFFFFFFFF
_INFINITIES = (float("inf"), float("-inf"))
# The spellings a NonFinite marker (a str) can have: a vocabulary holding one of them
# cannot tell the marker from the value by a dict lookup, so it takes the strict path.
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


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


def is_candidates(doc) -> bool:
    """Whether a parsed body is a candidate batch (then candidates_of checks its shape)."""
    return type(doc) is dict and ("candidates" in doc or "context" in doc)


def candidates_of(doc: dict, max_batch: int) -> tuple[dict, list]:
    """The context and the candidates of a candidate batch; 400 for another shape, 413
    past `max_batch` candidates. Call ids_of after it for the ids."""
    extra = [key for key in doc if key not in CANDIDATE_KEYS]
    if extra:
        raise RequestError(400, f"unknown top-level key; {CANDIDATES}", field=extra[0])
    context = doc.get("context", {})
    if type(context) is not dict:
        raise RequestError(
            400,
            f"'context' must be an object of field: value; got {kind(context)}",
            field="context",
        )
    candidates = doc.get("candidates")
    if type(candidates) is not list or not candidates:
        got = "an empty list" if candidates == [] else kind(candidates)
        raise RequestError(
            400, f"'candidates' must be a non-empty list of objects; got {got}", field="candidates"
        )
    if len(candidates) > max_batch:
        raise RequestError(
            413,
            f"{len(candidates)} candidates; at most {max_batch} per request",
            field="candidates",
        )
    if set(map(type, candidates)) != {dict}:
        i = next(i for i, c in enumerate(candidates) if type(c) is not dict)
        raise RequestError(
            400, f"each candidate must be an object; got {kind(candidates[i])}", row=i
        )
    return context, candidates


def split(context: dict, candidates: list[dict]) -> tuple[dict, dict[str, list]]:
    """A candidate batch as what every row shares (the context's fields no candidate
    sets) and a column per field any candidate sets (a candidate's value, else the
    context's): what encode_columns and Lookup.columns_of take. A field neither gives a
    candidate is MISSING in its column, for the encoder or the lookup to refuse."""
    varying = dict.fromkeys(chain.from_iterable(candidates))  # every key, in order, in C
    columns = {}
    for name in varying:
        default = context.get(name, MISSING)
        column = list(map(dict.get, candidates, repeat(name), repeat(default)))
        if default is not MISSING and default is not None:
            _check_override(name, default, column)
        columns[name] = column
    shared = {k: v for k, v in context.items() if k not in varying}
    return shared, columns


def _check_override(name: str, default, column: list) -> None:
    """A 400 when a candidate gives `name` another JSON type than the context does."""
    want = _JSON_KIND.get(type(default))
    types = set(map(type, column))
    types.discard(NONE)
    if all(_JSON_KIND.get(t) == want for t in types):
        return
    i = next(i for i, v in enumerate(column) if v is not None and _JSON_KIND.get(type(v)) != want)
    raise RequestError(
        400,
        f"candidate {i} sends {kind(column[i])} where the context sends {kind(default)}",
        field=name,
        row=i,
    )


def contract_of(keys, known: frozenset, fields: dict | None) -> str:
    """ "features" or "raw" for a row with these keys: with a snapshot (its base-table
    `fields`), keys that are all fields make a raw record, even one holding every feature
    (a base table that is all features, and a time); any other keys are taken as the
    features, so a typo beside every feature is refused as an unknown feature."""
    keys = keys if isinstance(keys, (set, frozenset)) else set(keys)
    if fields is None or keys == known or (keys >= known and not keys <= fields.keys()):
        return "features"
    return "raw"


def rows_from_columns(shared: dict, columns: dict, n: int) -> list[dict]:
    """The n rows, as dicts, of what is shared and what varies (the request log's rows)."""
    names = [*shared, *columns]
    values = [repeat(v, n) for v in shared.values()] + list(columns.values())
    return [dict(zip(names, row)) for row in zip(*values)] if values else [{} for _ in range(n)]


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
        # encode_columns' tables: each code as its float32 bytes, joined into a column in
        # one C call; a vocabulary holding a NaN token's spelling takes the strict path.
        self._code_bytes = [
            {value: struct.pack("f", code) for value, code in codes.items()}
            for codes in self._codes
        ]
        self._strict = [bool(_NON_FINITE & set(vocab)) for vocab in schema.categorical.values()]

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

    def encode_columns(self, shared: dict, columns: dict, n: int) -> np.ndarray:
        """The float32 matrix of n rows that share the values in `shared` and take the
        others from `columns` (a sequence of n values per feature; a name in both is the
        column's), the same values `encode` gives those rows as dicts; a RequestError (422)
        for the first bad field, a shared one first, then by row."""
        if self.known != shared.keys() | columns.keys():
            raise self.explain_columns(shared, columns, n)
        x = np.empty((n, len(self.names)), dtype=np.float32)
        if not n:
            return x
        try:
            template = [
                0.0 if name in columns else self._scalar(shared[name], j)
                for j, name in enumerate(self.names)
            ]
            x[:] = template  # every shared value, broadcast over the rows in one call
            for j, name in enumerate(self.names):
                if name in columns:
                    x[:, j] = self._encode_column(columns[name], j, n)
        except (_Refused, KeyError, TypeError, ValueError, OverflowError, struct.error):
            raise self.explain_columns(shared, columns, n) from None
        return x

    def _scalar(self, value, j: int) -> float:
        """A shared value's float32 code or number (a Python float, exact)."""
        if j < self.n_numeric:
            if type(value) not in NUMERIC_TYPES:
                raise _Refused
            if value is None:
                return _NAN
            single = struct.unpack("f", struct.pack("f", value))[0]
            if single in _INFINITIES:  # past float32's range
                raise _Refused
            return single
        if type(value) not in CATEGORICAL_TYPES:
            raise _Refused
        c = j - self.n_numeric
        return self._codes[c].get(value, self._other[c])

    def _encode_column(self, values, j: int, n: int) -> np.ndarray:
        if j < self.n_numeric:
            return _number_column(values, n)
        return self._code_column(j - self.n_numeric, values, n)

    def _code_column(self, c: int, values, n: int) -> np.ndarray:
        """Categorical codes of `values`: a dict lookup per value (in C), the codes' bytes
        joined. A value outside the vocabulary (KeyError) is looked at again: a string
        gets `other`, anything else is refused."""
        table = self._code_bytes[c]
        if self._strict[c]:
            if not set(map(type, values)) <= CATEGORICAL_TYPES:
                raise _Refused
            return np.array(list(map(self._codes[c].get, values, repeat(self._other[c]))))
        try:
            joined = b"".join(operator.itemgetter(*values)(table)) if n > 1 else table[values[0]]
            return np.frombuffer(joined, np.float32)
        except KeyError:
            pass
        joined = b"".join(map(table.get, values, repeat(_UNSEEN)))
        column = np.frombuffer(joined, np.float32).copy()
        unseen = np.flatnonzero(column.view(np.uint32) == _UNSEEN_CODE).tolist()
        looked = operator.itemgetter(*unseen)(values) if len(unseen) > 1 else [values[unseen[0]]]
        if set(map(type, looked)) != {str}:
            raise _Refused
        column[unseen] = self._other[c]
        return column

    def explain_columns(self, shared: dict, columns: dict, n: int) -> RequestError:
        """The first error of encode_columns' input, found value by value (the slow path):
        a missing or unknown feature, a bad shared value, then the first bad row."""
        for name in self.names:
            if name not in shared and name not in columns:
                return RequestError(422, "missing feature (send null for a missing value)", name)
        for key in (*shared, *columns):
            if key not in self.known:
                return RequestError(422, "unknown field: not one of the model's features", key)
        for name in self.names:
            if name not in columns:
                problem = value_problem(shared[name], name in self.schema.categorical)
                if problem:
                    return RequestError(422, problem, field=name)
        varying = [name for name in self.names if name in columns]
        for i in range(n):
            for name in varying:
                value = columns[name][i]
                if value is MISSING:
                    problem = "missing feature (send null for a missing value)"
                else:
                    problem = value_problem(value, name in self.schema.categorical)
                if problem:
                    return RequestError(422, problem, field=name, row=i)
        raise AssertionError("columns refused by the fast encoder but not explained")

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


def _number_column(values, n: int) -> np.ndarray:
    """A numeric column as float32, in one struct pass (two with a None in it). struct
    refuses strings and None but takes booleans, which only 0.0 and 1.0 can be: those
    few values' types are looked at. A numpy array (binary tensor contents) is already
    numbers of its tensor's datatype: cast, and past float32's range refused."""
    if isinstance(values, np.ndarray):
        column = values.astype(np.float32)
        if np.isinf(column).any():
            raise _Refused
        return column
    packer = _packer(n)
    try:
        packed = packer.pack(*values)
    except (struct.error, TypeError):  # a None (missing), or not a number
        packed = packer.pack(*map(_NAN_FOR_NONE.get, values, values))  # unhashable: TypeError
    column = np.frombuffer(packed, np.float32)
    if np.isinf(column).any():
        raise _Refused  # a number past float32's range
    zeros_or_ones = (column == 0) | (column == 1)
    if zeros_or_ones.any():
        if n <= 256:
            types = set(map(type, values))
        else:  # only the zeros and ones can be booleans
            suspects = np.flatnonzero(zeros_or_ones).tolist()
            looked = operator.itemgetter(*suspects)(values) if len(suspects) > 1 else ()
            types = set(map(type, looked)) if looked else {type(values[suspects[0]])}
        if bool in types:
            raise _Refused
    return column


@functools.lru_cache(maxsize=64)
def _packer(n: int) -> struct.Struct:
    return struct.Struct(f"={n}f")


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


# A NaN token stands in for a number, so it is not a type mismatch of its own.
_JSON_KIND = {float: "number", int: "number", NonFinite: "number", str: "string"}
_JSON_KIND |= {bool: "boolean", list: "array", dict: "object"}


class _Refused(Exception):
    """The fast path saw something it does not accept; `explain` says what."""
