"""The model's input contract: which columns, in which order, and how each is encoded.

Categorical values become codes from a vocabulary fitted on the training split (most
frequent first); a value outside it, rare in training or never seen, gets the shared
`other` code, which training saw too, so serving a new campaign is not a surprise to the
model. Missing values stay NaN, which XGBoost and ONNX treat as missing. Everything is
float32, the precision XGBoost and ONNX Runtime compute in, so both see the same inputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrpipe.errors import DataError


@dataclass(frozen=True)
class FeatureSchema:
    numeric: list[str]
    categorical: dict[str, list[str]]  # feature -> vocabulary; a value's code is its index
    id: str
    time: str
    label: str
    weight: str

    @property
    def names(self) -> list[str]:
        """Model input columns, in order: numeric first, then categorical codes."""
        return [*self.numeric, *self.categorical]

    def other_code(self, feature: str) -> int:
        return len(self.categorical[feature])

    def encode(self, table: pa.Table, source: str = "input") -> np.ndarray:
        """A float32 matrix with one column per `names` entry."""
        missing = [c for c in self.names if c not in table.column_names]
        if missing:
            raise DataError(
                f"{source}: column '{missing[0]}' missing (the model needs {', '.join(self.names)})"
            )
        out = np.empty((table.num_rows, len(self.names)), dtype=np.float32)
        for i, name in enumerate(self.numeric):
            column = table.column(name)
            if not (
                pa.types.is_floating(column.type)
                or pa.types.is_integer(column.type)
                or pa.types.is_null(column.type)
            ):
                raise DataError(
                    f"{source}: column '{name}' has type {column.type}, expected a number"
                )
            out[:, i] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        for j, (name, vocab) in enumerate(self.categorical.items(), start=len(self.numeric)):
            column = table.column(name).cast(pa.string())
            codes = pc.index_in(column, value_set=pa.array(vocab, pa.string()))
            codes = pc.if_else(pc.is_null(column), None, pc.coalesce(codes, self.other_code(name)))
            out[:, j] = codes.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return out

    def to_json(self) -> str:
        # Not sort_keys: the order of `categorical` is the order of the model's inputs.
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        return cls(**json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> FeatureSchema:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def fit(train: pa.Table, roles: dict, max_categories: int, min_count: int) -> FeatureSchema:
    """Vocabularies from the training split: up to `max_categories` values per feature,
    each seen at least `min_count` times, most frequent first (ties by value)."""
    counts = {
        name: {
            c["values"]: c["counts"]
            for c in pc.value_counts(train.column(name).drop_null().cast(pa.string())).to_pylist()
        }
        for name in roles["categorical"]
    }
    return from_counts(counts, roles, max_categories, min_count)


def from_counts(
    counts: dict[str, dict[str, int]], roles: dict, max_categories: int, min_count: int
) -> FeatureSchema:
    """The schema from each categorical feature's value counts in train (text values,
    nulls not counted), however they were counted: by Arrow here, by Spark in
    ctrpipe/model/distributed.py."""
    vocab = {}
    for name in roles["categorical"]:
        pairs = [(n, value) for value, n in counts[name].items() if n >= min_count]
        pairs.sort(key=lambda p: (-p[0], p[1]))
        vocab[name] = [value for _, value in pairs[:max_categories]]
    return FeatureSchema(
        numeric=list(roles["numeric"]),
        categorical=vocab,
        id=roles["id"],
        time=roles["time"],
        label=roles["label"],
        weight=roles["weight"],
    )
