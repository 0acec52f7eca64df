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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sscbench.results import write_atomic
from sscbench.spec import DataSpec

CACHE_FORMAT = 1  # bump when the cached file's layout changes
ARRAYS = ("x", "y", "x_test", "y_test")


class DataCacheError(RuntimeError):
    """The data cache cannot be written (a read-only or full file system)."""


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


def generation_args(spec: DataSpec) -> dict[str, object]:
    """mnist1d's ``get_dataset_args()`` with the spec's values; ``url`` is dropped (unused)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    args.update(spec.mnist1d_args())
    return args


def cache_path(spec: DataSpec, cache_dir: Path | None = None) -> Path:
    args = generation_args(spec)
    key = json.dumps({"format": CACHE_FORMAT, "args": args}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (cache_dir or default_cache_dir()) / f"mnist1d-{digest}.npz"


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


def load_arrays(spec: DataSpec, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """The raw train/test arrays, from the cache or freshly generated (then cached)."""
    path = cache_path(spec, cache_dir)
    if path.exists():
        try:
            with np.load(path) as cached:
                arrays = {k: cached[k] for k in cached.files}
            if set(arrays) == set(ARRAYS):
                return arrays
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a truncated or corrupt cache file: generate it again (deterministic) and replace it
    arrays = _generate(generation_args(spec))
    try:
        write_atomic(path, _npz_bytes(arrays))  # a crash never leaves a truncated cache file
    except OSError as exc:
        raise DataCacheError(f"cannot write the mnist1d cache {path}: {exc.strerror or exc}; set SSCBENCH_CACHE "
                             "to a writable folder") from None
    return arrays


def load(spec: DataSpec, cache_dir: Path | None = None) -> Dataset:
    """Train / validation / test as PROTOCOL.md defines them.

    Validation is the LAST ``spec.validation_size`` samples of mnist1d's train
    split; models train on the samples before it.
    """
    arrays = load_arrays(spec, cache_dir)
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    n_val = spec.validation_size
    if not 0 < n_val < len(y):
        raise ValueError(
            f"data.validation_size={n_val} must be between 1 and {len(y) - 1} "
            f"(the train split has {len(y)} samples)"
        )
    cut = len(y) - n_val
    num_classes = int(max(y.max(), int(arrays["y_test"].max()))) + 1
    return Dataset(
        train=Split(x[:cut].contiguous(), y[:cut].contiguous()),
        validation=Split(x[cut:].contiguous(), y[cut:].contiguous()),
        test=Split(torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"])),
        num_classes=num_classes,
    )
