"""XGBoost Booster to ONNX, and the check that both give the same click probabilities.

The ONNX model takes one float32 input `features` of shape [None, n_features] (the
FeatureSchema's columns, in its order; NaN is missing) and returns `probabilities`, an
[N, 2] float32 array whose column 1 is the click probability (plus `label`, the argmax).

Two things the converter (onnxmltools 1.16) gets wrong or leaves open, handled here:
- It reads split features from the tree dump and only understands names like `f3`, so
  the booster is converted under positional names (the bytes of the split tests do not
  change; only the names do).
- It derives the intercept from base_score with a heuristic that treats a model whose
  first tree is a single zero leaf differently; the intercept is written explicitly
  here, as XGBoost computes it: logit(base_score) in float32.
The ONNX bytes are deterministic: a fixed graph name, opset and doc string, no uuid.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from ctrpipe.errors import DataError

if TYPE_CHECKING:  # importing xgboost takes 1.3 s, which serving and fetching never need
    import xgboost as xgb

INPUT = "features"
OUTPUT = "probabilities"
CLICK_COLUMN = 1  # column of OUTPUT that holds P(click)
OPSET = 15  # onnxmltools' own default today; pinned so an onnx upgrade keeps the bytes
TOLERANCE = 1e-6
DOC = "Click probability: output 'probabilities'[:, 1]; input 'features' float32, NaN = missing"


def convert(booster: xgb.Booster, n_features: int) -> bytes:
    """The serialized ONNX model of a binary:logistic booster."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    objective = _config(booster)["learner"]["objective"]["name"]
    if objective != "binary:logistic":
        raise DataError(f"model objective is {objective}; the package expects binary:logistic")
    positional = booster.copy()
    positional.feature_names = [f"f{i}" for i in range(n_features)]
    model = convert_xgboost(
        positional,
        name="ctr_model",
        doc_string=DOC,
        target_opset=OPSET,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
    )
    _set_intercept(model, base_margin(booster))
    return model.SerializeToString()


def base_margin(booster: xgb.Booster) -> float:
    """XGBoost's intercept on the margin scale: logit(base_score), computed in float32."""
    raw = _config(booster)["learner"]["learner_model_param"]["base_score"]
    scores = json.loads(raw) if raw.startswith("[") else [float(raw)]  # 3.x: "[3.8E-2]"
    if len(scores) != 1:
        raise DataError(f"model has {len(scores)} base scores; expected one (binary model)")
    p = np.float32(scores[0])
    return float(-np.log(np.float32(1) / p - np.float32(1)))


def _set_intercept(model: onnx.ModelProto, margin: float) -> None:
    (node,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    kept = [a for a in node.attribute if a.name != "base_values"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("base_values", [margin])])


def _config(booster: xgb.Booster) -> dict:
    return json.loads(booster.save_config())


def session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """One thread per session by default: serving runs many single-row requests side by
    side, and more intra-op threads only pay off on big batches."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    out = sess.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]
    return out[:, CLICK_COLUMN]


def probe_rows(x: np.ndarray, other_codes: dict[int, int]) -> np.ndarray:
    """`x` plus rows that exercise what validation rows may lack: each column missing in
    turn, and each categorical column at its `other` code (column index -> code)."""
    base = x[: min(len(x), 64)]
    probes = [x]
    for j in range(x.shape[1]):
        missing = base.copy()
        missing[:, j] = np.nan
        probes.append(missing)
    for j, code in other_codes.items():
        other = base.copy()
        other[:, j] = code
        probes.append(other)
    probes.append(np.full((1, x.shape[1]), np.nan, dtype=np.float32))
    return np.concatenate(probes).astype(np.float32)


def check_parity(booster: xgb.Booster, onnx_bytes: bytes, x: np.ndarray, source: str) -> float:
    """Largest absolute difference between ONNX Runtime and XGBoost on `x`; a DataError
    when it passes TOLERANCE, so a model that serves different numbers is never packaged."""
    return worst_difference(
        booster.inplace_predict(x), predict(session(onnx_bytes), x), "ONNX", source
    )


def worst_difference(expected: np.ndarray, got: np.ndarray, what: str, source: str) -> float:
    """Largest absolute difference of `got` (from `what`) from XGBoost's `expected`; a
    DataError naming the row when it passes TOLERANCE."""
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    if not len(diff):
        return 0.0
    worst = int(np.argmax(diff))
    if not diff[worst] <= TOLERANCE:  # `not <=` also catches NaN
        raise DataError(
            f"{source}: {what} and XGBoost predictions differ by "
            f"{diff[worst]:.3g} (> {TOLERANCE:g}) on row {worst} of {len(got)}: "
            f"{got[worst]:.8f} vs {expected[worst]:.8f}"
        )
    return float(diff[worst])
