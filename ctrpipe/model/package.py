"""The model package: one folder with everything serving and monitoring need, verified
on every load.

    model.ubj      the XGBoost model, byte for byte as trained
    model.onnx     the same model for ONNX Runtime (parity checked to 1e-6 at build)
    schema.json    the model's input contract: the FeatureSchema, per feature its type and
                   how unknown and missing values are encoded, the ONNX input and output
    profile.json   the reference profile for drift monitoring (see ctrpipe/model/profile.py)
    model_card.md  params, trees, features, data, metrics, data hashes, code commit
    snapshot/      the online snapshot it was validated with (ctrpipe/online/store.py)
    manifest.json  sha256 of every other file (ctrpipe/manifest.py)

A package's identity (content address) is the sha256 of its manifest.json: the same
inputs give the same bytes in every file, so a rebuild gives the same digest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ctrpipe.errors import DataError

# A package is a content-addressed folder: its callers write, verify and name it here.
from ctrpipe.manifest import MANIFEST as MANIFEST
from ctrpipe.manifest import digest as digest
from ctrpipe.manifest import verify as verify
from ctrpipe.manifest import write as write
from ctrpipe.model import card, onnx_export, profile
from ctrpipe.model.encoding import FeatureSchema
from ctrpipe.model.settings import Package as Settings

if TYPE_CHECKING:  # xgboost takes 1.3 s to import; verifying and loading a package need none
    import onnxruntime as ort
    import xgboost as xgb

PARITY_ROWS = 20_000  # validation rows compared; evenly spaced, so the same every build


@dataclass(frozen=True)
class Inputs:
    model: bytes  # models/model.ubj as read: the package copies these bytes
    schema: FeatureSchema
    train: pa.Table
    validation: pa.Table
    train_params: dict
    metrics: dict | None  # None when the evaluate report is absent
    data_hashes: dict[str, str]  # train / validation / golden -> md5 in dvc.lock
    commit: str
    # what the inputs are called in errors and in the card: their paths, as given
    names: dict[str, str] = field(
        default_factory=lambda: {
            "model": "model.ubj",
            "train": "train",
            "validation": "validation",
            "train_params": "params.json",
            "metrics": "metrics.json",
        }
    )


def build(inputs: Inputs, settings: Settings) -> dict[str, bytes]:
    """The package's files by name, manifest excluded; a DataError if anything is off."""
    schema, names = inputs.schema, inputs.names
    booster = load_booster(inputs.model, names["model"])
    check_features(booster, schema, names["model"])
    for role in ("train", "validation"):
        table = getattr(inputs, role)
        if schema.label not in table.column_names or table.num_rows == 0:
            raise DataError(f"{names[role]}: expected rows with a '{schema.label}' column")
    onnx_bytes = onnx_export.convert(booster, len(schema.names))
    validation = schema.encode(inputs.validation, names["validation"])
    onnx_export.check_parity(booster, onnx_bytes, _parity_rows(validation, schema), names["model"])
    train = schema.encode(inputs.train, names["train"])
    reference = profile.build(
        inputs.train,
        schema,
        booster.inplace_predict(train),
        settings.profile_bins,
        settings.profile_top_categories,
        names["train"],
    )
    card_text = card.render(
        booster,
        schema,
        inputs.train,
        inputs.validation,
        inputs.train_params,
        inputs.metrics,
        inputs.data_hashes,
        inputs.commit,
        names,
    )
    return {
        "model.ubj": inputs.model,
        "model.onnx": onnx_bytes,
        "schema.json": _json(spec(schema), sort_keys=False),
        "profile.json": _json(reference),
        "model_card.md": card_text.encode("utf-8"),
    }


def check_features(booster: xgb.Booster, schema: FeatureSchema, source: str) -> None:
    """The model must read its columns in the schema's order: a reordered schema would
    encode every request into the wrong columns, and parity cannot see that."""
    if booster.num_features() != len(schema.names):
        raise DataError(
            f"{source}: the model takes {booster.num_features()} features but "
            f"the schema lists {len(schema.names)}"
        )
    if booster.feature_names is not None and list(booster.feature_names) != schema.names:
        raise DataError(
            f"{source}: the model's features are {', '.join(booster.feature_names)}"
            f"; the schema's, in order, are {', '.join(schema.names)}"
        )


def load_booster(model: bytes, source: str) -> xgb.Booster:
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(model))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise DataError(f"{source}: not an XGBoost model ({first})") from None
    return booster


def _parity_rows(x: np.ndarray, schema: FeatureSchema) -> np.ndarray:
    rows = x[np.linspace(0, len(x) - 1, min(len(x), PARITY_ROWS)).astype(int)]
    other = {schema.names.index(n): schema.other_code(n) for n in schema.categorical}
    return onnx_export.probe_rows(rows, other)


def spec(schema: FeatureSchema) -> dict:
    """schema.json: the FeatureSchema and how serving turns a request into model input.

    Written in this key order, not sorted: the order of `feature_schema.categorical` is
    the order of the model's columns, and sorting would change it."""
    features = []
    for i, name in enumerate(schema.names):
        entry = {"name": name, "index": i, "missing": "NaN"}
        if name in schema.categorical:
            entry |= {
                "type": "categorical",
                "encoding": "index in feature_schema vocabulary",
                "unknown": "other code",
                "other_code": schema.other_code(name),
            }
        else:
            entry |= {"type": "numeric", "encoding": "value as float32"}
        features.append(entry)
    return {
        "format": 1,
        "feature_schema": asdict(schema),
        "features": features,
        "input": {
            "name": onnx_export.INPUT,
            "dtype": "float32",
            "shape": [None, len(schema.names)],
        },
        "output": {
            "name": onnx_export.OUTPUT,
            "column": onnx_export.CLICK_COLUMN,
            "meaning": "click probability",
        },
    }


@dataclass(frozen=True)
class Loaded:
    path: Path
    digest: str
    schema: FeatureSchema
    spec: dict
    session: ort.InferenceSession
    label_rate: float  # the weighted positive rate of its training set (profile.json)

    def predict(self, rows: pa.Table | np.ndarray) -> np.ndarray:
        """Click probabilities for a table of raw features or an encoded matrix."""
        x = self.schema.encode(rows) if isinstance(rows, pa.Table) else np.asarray(rows)
        if x.ndim != 2 or x.shape[1] != len(self.schema.names):
            raise DataError(
                f"input: expected a matrix of {len(self.schema.names)} columns, got shape {x.shape}"
            )
        return onnx_export.predict(self.session, x)


def load(path: str | Path) -> Loaded:
    """Open a package after checking every file against its manifest."""
    path = Path(path)
    files = verify(path)
    spec_doc = json.loads(files["schema.json"])
    return Loaded(
        path=path,
        digest=digest(path),
        schema=FeatureSchema(**spec_doc["feature_schema"]),
        spec=spec_doc,
        session=onnx_export.session(files["model.onnx"]),
        label_rate=json.loads(files["profile.json"])["label_rate"],
    )


def _json(obj, sort_keys: bool = True) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8")
