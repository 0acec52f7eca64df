"""mnist1d, generated locally and cached on disk.

What it is: the protocol's data (PROTOCOL.md, "Data"): ``mnist1d.data.make_dataset``
with the spec's arguments, split into train / validation / test tensors.
What it is not: a downloader. ``mnist1d.data.get_dataset`` fetches a different
5000-sample file from the network, so it is never called.

The cache file name is a hash of every generation argument, so changing any one
of them regenerates. ``make_dataset`` reseeds Python's and NumPy's global RNGs;
``load`` restores them (and torch's) so callers never see the difference.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sscbench.files import write_atomic
from sscbench.spec import DataSpec

CACHE_FORMAT = 1  # bump when the cached file's layout changes
ARRAYS = ("x", "y", "x_test", "y_test")


class DataCacheError(RuntimeError):
    """The data cache cannot be written (a read-only or full file system)."""


class DataError(RuntimeError):
    """A workload's data cannot be read: a package that is not installed, a file that fails its checksum."""


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` [N, D] float32 and labels ``y`` [N] int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Dataset:
    """The protocol's three splits; test is touched only by evaluation."""

    train: Split
    validation: Split
    test: Split
    num_classes: int

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.train.to(device), self.validation.to(device), self.test.to(device),
            self.num_classes,
        )


def default_cache_dir() -> Path:
    """``$SSCBENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/sscbench`` (``~/.cache/sscbench``)."""
    if env := os.environ.get("SSCBENCH_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sscbench"


def generation_args(spec: DataSpec, extra: Mapping[str, object] | None = None) -> dict[str, object]:
    """mnist1d's ``get_dataset_args()`` with the spec's values, then ``extra`` (a workload's variant);
    ``url`` is dropped (unused)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    args.update(spec.mnist1d_args())
    args.update(extra or {})
    return args


def keyed_path(prefix: str, key: Mapping[str, object], cache_dir: Path | None = None) -> Path:
    """The cache file of the arrays that ``key`` (JSON-able) decides: ``PREFIX-HASH.npz``."""
    text = json.dumps({"format": CACHE_FORMAT, "args": dict(key)}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return (cache_dir or default_cache_dir()) / f"{prefix}-{digest}.npz"


def cache_path(spec: DataSpec, cache_dir: Path | None = None, extra: Mapping[str, object] | None = None) -> Path:
    return keyed_path("mnist1d", generation_args(spec, extra), cache_dir)


def _generate(args: dict[str, object]) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        raw = make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
    return {
        "x": np.asarray(raw["x"], dtype=np.float32),
        "y": np.asarray(raw["y"], dtype=np.int64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float32),
        "y_test": np.asarray(raw["y_test"], dtype=np.int64),
    }


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def cached_arrays(path: Path, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from the cache file ``path``, or ``make()`` (deterministic) written there atomically.

    A truncated or corrupt cache file is made again and replaced; an unwritable
    cache is a ``DataCacheError`` naming the file. Workloads use this for any data
    that is expensive to generate (``keyed_path`` names the file).
    """
    if path.exists():
        try:
            with np.load(path) as cached:
                arrays = {k: cached[k] for k in cached.files}
            if arrays:
                return arrays
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a truncated or corrupt cache file: generate it again (deterministic) and replace it
    arrays = make()
    try:
        write_atomic(path, _npz_bytes(arrays))  # a crash never leaves a truncated cache file
    except OSError as exc:
        raise DataCacheError(f"cannot write the data cache {path}: {exc.strerror or exc}; set SSCBENCH_CACHE "
                             "to a writable folder") from None
    return arrays


def load_arrays(spec: DataSpec, cache_dir: Path | None = None,
                extra: Mapping[str, object] | None = None) -> dict[str, np.ndarray]:
    """The raw mnist1d train/test arrays, from the cache or freshly generated (then cached)."""
    args = generation_args(spec, extra)
    path = cache_path(spec, cache_dir, extra)
    arrays = cached_arrays(path, lambda: _generate(args))
    if set(arrays) != set(ARRAYS):  # a cache file of another layout: made again
        path.unlink(missing_ok=True)
        arrays = cached_arrays(path, lambda: _generate(args))
    return arrays


def split(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, validation_size: int) -> Dataset:
    """Train / validation / test, validation being the LAST ``validation_size`` samples of the train arrays."""
    x_t, y_t = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    n_val = validation_size
    if not 0 < n_val < len(y_t):
        raise ValueError(
            f"data.validation_size={n_val} must be between 1 and {len(y_t) - 1} "
            f"(the train split has {len(y_t)} samples)"
        )
    cut = len(y_t) - n_val
    num_classes = int(max(int(y_t.max()), int(y_test.max()))) + 1
    return Dataset(
        train=Split(x_t[:cut].contiguous(), y_t[:cut].contiguous()),
        validation=Split(x_t[cut:].contiguous(), y_t[cut:].contiguous()),
        test=Split(torch.from_numpy(np.ascontiguousarray(x_test)), torch.from_numpy(np.ascontiguousarray(y_test))),
        num_classes=num_classes,
    )


def load(spec: DataSpec, cache_dir: Path | None = None, extra: Mapping[str, object] | None = None) -> Dataset:
    """mnist1d's train / validation / test as PROTOCOL.md defines them (``extra``: a variant's arguments).

    Validation is the LAST ``spec.validation_size`` samples of mnist1d's train
    split; models train on the samples before it.
    """
    arrays = load_arrays(spec, cache_dir, extra)
    return split(arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], spec.validation_size)



def verified_bytes(path: Path, sha256: str) -> bytes:
    """The bytes of ``path``, refused (``DataError`` naming the file) when missing or not the recorded sha256."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise DataError(f"{path} is not the file sscbench was written for (sha256 {digest[:16]}..., expected "
                        f"{sha256[:16]}...): changed or truncated; reinstall the package that ships it")
    return raw


def stratified_take(y: np.ndarray, counts: Mapping[int, int], rng: np.random.Generator) -> np.ndarray:
    """Indices into ``y`` drawing ``counts[c]`` samples of every class c at random (sorted: stable order)."""
    chosen = []
    for label in sorted(counts):
        members = np.flatnonzero(y == label)
        if counts[label] > members.size:
            raise ValueError(f"class {label} has {members.size} samples, {counts[label]} asked for")
        chosen.append(rng.choice(members, size=counts[label], replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def proportional_counts(y: np.ndarray, total: int) -> dict[int, int]:
    """``total`` split over the classes of ``y`` in proportion to their counts (largest remainders)."""
    labels, sizes = np.unique(y, return_counts=True)
    exact = sizes * total / sizes.sum()
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[:total - counts.sum()]:
        counts[k] += 1
    return {int(label): int(c) for label, c in zip(labels, counts, strict=True)}
