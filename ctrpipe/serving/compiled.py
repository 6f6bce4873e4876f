"""The model compiled to native code: the fast path for batches, checked against XGBoost.

Why this exists: the batch target is 2M rows/s. ONNX Runtime's tree ensemble tops
out at about 0.55M rows/s on this model with 2 threads, and XGBoost's own predictor at
0.9M on one. Here the booster's trees become static C arrays behind a small branch-free
kernel, compiled once per model with the C compiler and called through ctypes:

    model = compiled.load(package_files["model.ubj"], n_features=23, threads=2)
    p = model.predict(x)        # x: float32 [n, n_features], NaN = missing -> float32 [n]

Measured on the project's 2-core Xeon, 147 trees of depth 3 (bench/batch.py; figures are
CPU time per core, because another process was using both cores): 1.57M rows/s per core,
against 0.33M for ONNX Runtime and 0.82M for the same trees through tl2cgen 1.0.0's
generated if/else code. The trees' tests depend on the data, so if/else code loses most
of its time to mispredicted branches. Here the trees are padded to one depth and every
row takes exactly DEPTH steps of load, compare and index arithmetic per tree, for 8
rows side by side, with no branch on the data. A single row takes 4.6 us (p50) through
`predict`, against 10.4 us for ONNX Runtime's `session.run`. What it costs: a C
compiler at the first load of a model (0.2 s for this one, 2 s for 300 trees of depth 7;
the library is cached), and this module's code generator, about 130 lines, which every
load checks against XGBoost.

What it computes, and why it matches XGBoost bit for bit on this model (the check allows
1e-6; a 300-tree, depth-10 model differed by 4.5e-8):
- each split is `x < threshold` in float32, on the booster's float32 thresholds; NaN takes
  the node's default direction, and +-inf compares like any number;
- the margin starts at XGBoost's intercept (logit(base_score) in float32, see
  onnx_export.base_margin) and adds the leaves tree by tree in float32, in XGBoost's
  order; the probability is 1 / (1 + expf(-margin)). The output is float32, because that
  is the precision the model has. Widening it would add digits that mean nothing, and
  ONNX Runtime and XGBoost answer in float32 as well.
- compiled with -O3 for the baseline of the machine's architecture (-march=x86-64 on
  x86_64, never -march=native), so a cached library runs on any CPU of that kind.
  -ffp-contract=off forbids fused multiply-adds, and there is no -ffast-math, so NaN
  tests and the order of additions stay as written. AVX2 (x86-64-v3) measured no faster:
  the kernel is bound by dependent loads, not arithmetic.

Supported models are binary:logistic gbtree boosters with numeric splits (the project
encodes categoricals as integer codes) and trees at most MAX_DEPTH deep. Anything else,
no compiler, or a failed compile is a one-line ConfigError, so the caller can serve
through ONNX instead.

Cache: `$CTRPIPE_CACHE/compiled` (default ~/.cache/ctrpipe/compiled). The library is
named by the sha256 of its C source and flags. The source holds every threshold and
leaf, so a different model, generator or flag set gets a new name. The compiler is not
part of the name: a cache filled on a build machine serves where there is no compiler.
Each library has a `.sha256` file of its bytes beside it. A library whose bytes do not
match is never loaded; it is rebuilt. Both files are written to a temporary name and
renamed into place. Another process therefore sees the old file, the new one, or
nothing, never half a file. A rename also leaves a library another process has mapped
untouched. Libraries are never unloaded (ctypes has no dlclose): 56 KB for this model,
0.5 MB for 300 trees of depth 7.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shlex
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb

from ctrpipe import fileio
from ctrpipe.errors import ConfigError, DataError
from ctrpipe.model import onnx_export, package

GENERATOR = 1  # bump when the generated C changes meaning without changing its text
BLOCK = 8  # rows evaluated side by side: enough independent loads to hide their latency
PARALLEL_ROWS = 2048  # below this a batch stays on the calling thread
COMPILE_TIMEOUT = 600  # seconds
PROBE_ROWS = 2048  # rows of split thresholds the load-time check scores
MAX_DEPTH = 10  # deeper trees are left to ONNX: padding doubles the arrays per level


def _flags() -> list[str]:
    arch = ["-march=x86-64", "-mtune=generic"] if platform.machine() in ("x86_64", "AMD64") else []
    return ["-O3", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off", *arch]


FLAGS = _flags()


def default_cache_dir() -> Path:
    return fileio.cache_dir("compiled")


@dataclass(frozen=True)
class Trees:
    """The booster as complete binary trees of one depth, in heap order: inner node i of a
    tree tests x[feature] < threshold, and its children are 2i+1 (yes) and 2i+2 (no). A
    leaf above the full depth is padded down to it with placeholder tests whose two
    subtrees are the same leaf, so every row takes exactly `depth` steps in every tree
    and no step has to ask whether it reached a leaf."""

    n_features: int
    n_trees: int
    depth: int
    threshold: list[float]  # (2^depth - 1) per tree; float32 values
    feature: list[int]  # feature index, | 1 << 31 when a missing value goes left
    leaf: list[float]  # 2^depth per tree; float32 values
    base_margin: float
    splits: dict[int, set[float]]  # feature -> its real thresholds (for the probe rows)


def flatten(booster: xgb.Booster, source: str) -> Trees:
    """The arrays of a binary:logistic gbtree booster; a ConfigError for any other."""
    learner = json.loads(booster.save_raw("json"))["learner"]
    objective = learner["objective"]["name"]
    kind = learner["gradient_booster"]["name"]
    targets = learner["learner_model_param"].get("num_target", "1")
    if objective != "binary:logistic" or kind != "gbtree" or targets != "1":
        raise ConfigError(
            f"{source}: a {kind} {objective} model with {targets} targets cannot "
            f"be compiled (binary:logistic gbtree, one target, only)"
        )
    trees = learner["gradient_booster"]["model"]["trees"]
    for tree in trees:
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1 or any(tree["split_type"]):
            raise ConfigError(
                f"{source}: tree {tree['id']} has vector leaves or categorical "
                f"splits, which cannot be compiled"
            )
    depth = max((_depth(tree) for tree in trees), default=0)
    if depth > MAX_DEPTH:
        raise ConfigError(
            f"{source}: trees {depth} deep cannot be compiled (at most "
            f"{MAX_DEPTH}: each is padded to 2^depth leaves)"
        )
    out = Trees(
        n_features=booster.num_features(),
        n_trees=len(trees),
        depth=depth,
        threshold=[],
        feature=[],
        leaf=[],
        base_margin=onnx_export.base_margin(booster),
        splits={},
    )
    for tree in trees:
        _add_tree(out, tree)
    return out


def _depth(tree: dict) -> int:
    left, right = tree["left_children"], tree["right_children"]
    deepest, stack = 0, [(0, 0)]  # nodes pruned away (num_deleted) are never reached
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if left[node] != -1:
            stack += [(left[node], d + 1), (right[node], d + 1)]
    return deepest


def _add_tree(t: Trees, tree: dict) -> None:
    left, right = tree["left_children"], tree["right_children"]
    value, feature = tree["split_conditions"], tree["split_indices"]
    inner = 2**t.depth - 1
    threshold, features, leaf = [0.0] * inner, [0] * inner, [0.0] * (inner + 1)
    stack = [(0, 0, 0)]  # (XGBoost node, heap index, depth)
    while stack:
        node, i, d = stack.pop()
        if d == t.depth:
            leaf[i - inner] = float(np.float32(value[node]))
            continue
        if left[node] == -1:  # a leaf above the full depth: the same leaf on both sides
            stack += [(node, 2 * i + 1, d + 1), (node, 2 * i + 2, d + 1)]
            continue
        threshold[i] = float(np.float32(value[node]))
        features[i] = feature[node] | (int(tree["default_left"][node]) << 31)
        t.splits.setdefault(feature[node], set()).add(threshold[i])
        stack += [(left[node], 2 * i + 1, d + 1), (right[node], 2 * i + 2, d + 1)]
    t.threshold.extend(threshold), t.feature.extend(features), t.leaf.extend(leaf)


KERNEL = r"""
static inline __attribute__((always_inline))
void rows(const float *restrict x, float *restrict out, const int m) {
  float margin[BLOCK];
  uint32_t at[BLOCK];
  for (int r = 0; r < m; ++r) margin[r] = BASE_MARGIN;
  for (int t = 0; t < N_TREES; ++t) {
    const Node *tree = nodes + t * INNER;
    for (int r = 0; r < m; ++r) at[r] = 0;
    for (int d = 0; d < DEPTH; ++d) {
      for (int r = 0; r < m; ++r) {
        const Node node = tree[at[r]];
        const float v = x[r * N_FEATURES + (node.feature & 0x7fffffffu)];
        const uint32_t yes = (v < node.threshold) | ((v != v) & (node.feature >> 31));
        at[r] = 2 * at[r] + 2 - yes;
      }
    }
    for (int r = 0; r < m; ++r) margin[r] += leaves[t * (INNER + 1) + at[r] - INNER];
  }
  for (int r = 0; r < m; ++r) out[r] = 1.0f / (1.0f + expf(-margin[r]));
}

static void rows_block(const float *restrict x, float *restrict out) { rows(x, out, BLOCK); }
static void rows_one(const float *restrict x, float *restrict out) { rows(x, out, 1); }

int32_t ctrpipe_n_features(void) { return N_FEATURES; }

void ctrpipe_predict(const float *restrict x, int64_t n, float *restrict out) {
  int64_t i = 0;
  for (; i + BLOCK <= n; i += BLOCK) rows_block(x + i * N_FEATURES, out + i);
  for (; i < n; ++i) rows_one(x + i * N_FEATURES, out + i);
}
"""


def source(trees: Trees) -> str:
    """The C source of the model: its arrays, then the kernel. Floats are written in hex,
    so every float32 goes into the library exactly."""

    def f32(v: float) -> str:
        return float(np.float32(v)).hex() + "f"

    nodes = (
        ",\n".join(f"  {{{f32(thr)}, {f}u}}" for thr, f in zip(trees.threshold, trees.feature))
        or "  {0.0f, 0u}"
    )
    return "\n".join(
        [
            f"/* ctrpipe compiled model, generator {GENERATOR} */",
            "#include <math.h>",
            "#include <stdint.h>",
            f"#define N_FEATURES {trees.n_features}",
            f"#define N_TREES {trees.n_trees}",
            f"#define DEPTH {trees.depth}",
            f"#define INNER {2**trees.depth - 1}",
            f"#define BLOCK {BLOCK}",
            f"#define BASE_MARGIN {f32(trees.base_margin)}",
            "typedef struct { float threshold; uint32_t feature; } Node;",
            f"static const Node nodes[] = {{\n{nodes}\n}};",
            f"static const float leaves[] = {{{', '.join(map(f32, trees.leaf)) or '0.0f'}}};",
            KERNEL,
        ]
    )


def compiler() -> list[str]:
    """The C compiler command: $CC (which may carry words, e.g. `ccache gcc`) or gcc."""
    return shlex.split(os.environ.get("CC") or "gcc")


@dataclass
class Compiled:
    """A compiled model, ready to score. `built` says whether this load compiled it."""

    path: Path
    n_features: int
    threads: int
    built: bool
    parity: float = float("nan")  # the largest difference from XGBoost at load
    _fn: ctypes._CFuncPtr = field(default=None, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Click probabilities (float32) of an [n, n_features] matrix (NaN = missing)."""
        if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous):
            x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(
                f"input: expected a matrix of {self.n_features} columns, got shape {x.shape}"
            )
        n = x.shape[0]
        out = np.empty(n, dtype=np.float32)
        if self._pool is None or n < PARALLEL_ROWS:
            self._fn(x.ctypes.data, n, out.ctypes.data)  # ctypes releases the GIL
            return out
        step = -(-n // self.threads // BLOCK) * BLOCK
        starts = range(0, n, step)
        futures = [self._pool.submit(self._part, x, out, s, min(s + step, n)) for s in starts[1:]]
        self._part(x, out, 0, min(step, n))
        for f in futures:
            f.result()
        return out

    def _part(self, x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        self._fn(x[start:].ctypes.data, stop - start, out[start:].ctypes.data)


def load(
    model_ubj: bytes,
    n_features: int,
    cache_dir: Path | None = None,
    threads: int = 1,
    source_name: str = "model.ubj",
    probe: np.ndarray | None = None,
) -> Compiled:
    """Compile the model (or reuse its cached library) and check it against XGBoost on
    rows that straddle every split threshold, plus `probe` rows if given.

    ConfigError: the model cannot be compiled here (kind of model, no compiler, compile
    failed); serve through ONNX. DataError: not an XGBoost model, the wrong number of
    features, or answers that differ from XGBoost's by more than 1e-6."""
    booster = package.load_booster(model_ubj, source_name)
    if booster.num_features() != n_features:
        raise DataError(
            f"{source_name}: the model takes {booster.num_features()} features; "
            f"expected {n_features}"
        )
    booster.set_param({"nthread": 1})
    trees = flatten(booster, source_name)
    code = source(trees)
    cc = compiler()
    key = hashlib.sha256("\0".join([code, *FLAGS]).encode()).hexdigest()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    library = cache / f"{key[:32]}.so"
    built = not _intact(library)
    if built:
        _build(code, cc, library, source_name)
    fn = _open(library, n_features, source_name)
    model = Compiled(
        path=library, n_features=n_features, threads=max(1, threads), built=built, _fn=fn
    )
    rows = threshold_rows(trees)
    if probe is not None:
        rows = np.concatenate([rows, np.asarray(probe, dtype=np.float32)])
    model.parity = check_parity(booster, model, rows, source_name)
    if threads > 1:  # only once it is known to be right: a refused model starts no threads
        model._pool = ThreadPoolExecutor(threads - 1, "ctrpipe-compiled")
    return model


def _intact(library: Path) -> bool:
    """The library is there and its bytes are the ones its .sha256 file names."""
    try:
        expected = library.with_suffix(".sha256").read_text().strip()
        return hashlib.sha256(library.read_bytes()).hexdigest() == expected
    except OSError:
        return False


def _build(code: str, cc: list[str], library: Path, source_name: str) -> None:
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=library.parent))
    except OSError as exc:
        raise ConfigError(
            f"compiled model: cache folder {library.parent} is not writable "
            f"({exc.strerror}); set CTRPIPE_CACHE"
        ) from None
    try:
        (work / "model.c").write_text(code)
        try:  # relative names: the library's bytes do not depend on the temp folder
            done = subprocess.run(
                [*cc, *FLAGS, "-o", "model.so", "model.c", "-lm"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
            )
        except FileNotFoundError:
            raise ConfigError(
                f"compiled model: no C compiler ({shlex.join(cc)} not found; "
                f"set CC), so {source_name} cannot be compiled"
            ) from None
        except subprocess.TimeoutExpired:
            raise ConfigError(
                f"compiled model: {shlex.join(cc)} took over {COMPILE_TIMEOUT} s on {source_name}"
            ) from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            first = next((line for line in lines if "error" in line), lines[0])
            raise ConfigError(
                f"compiled model: {shlex.join(cc)} failed on {source_name} "
                f"(exit {done.returncode}): {first.strip()}"
            )
        data = (work / "model.so").read_bytes()
        (work / "sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
        os.replace(work / "model.so", library)  # the library first, then what vouches
        os.replace(work / "sha256", library.with_suffix(".sha256"))  # for it
    except OSError as exc:
        raise ConfigError(f"compiled model: cannot write {library} ({exc.strerror})") from None
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


def _open(library: Path, n_features: int, source_name: str):
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as exc:
        raise ConfigError(f"compiled model: cannot load {library} ({exc})") from None
    if lib.ctrpipe_n_features() != n_features:
        raise DataError(
            f"{library}: compiled for {lib.ctrpipe_n_features()} features, "
            f"{source_name} takes {n_features}"
        )
    fn = lib.ctrpipe_predict
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    fn.restype = None
    return fn


def threshold_rows(trees: Trees, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows where every value sits on a split threshold, one float32 step below it, past
    the outer ones, or is missing: the values where a compiled comparison could go the
    other way from XGBoost's. Plus onnx_export.probe_rows' each-column-missing rows."""
    rng = np.random.default_rng(seed)
    x = np.empty((rows, trees.n_features), dtype=np.float32)
    for j in range(trees.n_features):
        t = np.array(sorted(trees.splits.get(j, {0.0})), dtype=np.float32)
        below = np.nextafter(t, np.float32(-np.inf))
        values = np.concatenate([t, below, [t[0] - 1, t[-1] + 1, np.nan]]).astype(np.float32)
        x[:, j] = rng.choice(values, rows)
    return onnx_export.probe_rows(x, {})


def check_parity(booster: xgb.Booster, model: Compiled, x: np.ndarray, source: str) -> float:
    """Largest absolute difference between the compiled model and XGBoost on `x`; a
    DataError past onnx_export.TOLERANCE, as for ONNX."""
    return onnx_export.worst_difference(
        booster.inplace_predict(x), model.predict(x), "compiled model", source
    )
