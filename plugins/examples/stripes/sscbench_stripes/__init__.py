"""``stripes``: which way do the stripes run? A 2-D workload in one file.

Each sample is a ``size`` x ``size`` image of a sinusoidal grating in one of
four orientations (the class: horizontal, vertical, and the two diagonals),
with a random frequency and phase, plus Gaussian noise. Everything is drawn
from the spec's ``data.seed``, so ``sscbench compare`` re-draws it per
replicate, and the arrays are cached like mnist1d's. The model flattens the
image into a small MLP.

Its inputs are 2-D, so a plugin that needs 1-D signals (``ssc``) is refused
on it, while ``baseline``, ``gradnorm`` or ``spatial`` run.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sscbench.data import Dataset, cached_arrays, keyed_path, split
from sscbench.spec import DataSpec
from sscbench.workload import Shape, Workload

CLASSES = 4
TEST_SHARE = 0.2


class StripesArgs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    size: int = Field(8, ge=4, le=64, description="Image side in pixels.")
    samples: int = Field(3000, ge=100, description="Samples in all (train + test).")
    noise: float = Field(0.8, ge=0, description="Standard deviation of the pixel noise.")
    hidden: int = Field(64, gt=0, description="Hidden width of the MLP on the flattened image.")


def generate(args: StripesArgs, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, args.samples)
    angle = labels * (np.pi / CLASSES)  # 0, 45, 90 and 135 degrees
    freq = rng.uniform(0.6, 1.4, args.samples)
    phase = rng.uniform(0, 2 * np.pi, args.samples)
    grid = np.arange(args.size, dtype=np.float64)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    along = np.cos(angle)[:, None, None] * cols + np.sin(angle)[:, None, None] * rows
    images = np.sin(freq[:, None, None] * along + phase[:, None, None])
    images += rng.normal(0, args.noise, images.shape)
    cut = int(round(args.samples * (1 - TEST_SHARE)))
    x, y = images.astype(np.float32), labels.astype(np.int64)
    return {"x": x[:cut], "y": y[:cut], "x_test": x[cut:], "y_test": y[cut:]}


class Stripes(Workload):
    name = "stripes"
    description = "Orientation of noisy sinusoidal stripes in small 2-D images (4 classes); an MLP on the pixels."
    Args = StripesArgs

    def shape(self, args: StripesArgs, data: DataSpec) -> Shape:
        return Shape((args.size, args.size), CLASSES)

    def data(self, args: StripesArgs, data: DataSpec) -> Dataset:
        key = {"workload": self.name, "seed": data.seed, **args.model_dump(exclude={"hidden"})}
        arrays = cached_arrays(keyed_path("stripes", key), lambda: generate(args, data.seed))
        return split(arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], data.validation_size)

    def model(self, args: StripesArgs, shape: Shape) -> nn.Module:
        pixels = shape.input[0] * shape.input[1]
        return nn.Sequential(nn.Flatten(), nn.Linear(pixels, args.hidden), nn.ReLU(),
                             nn.Linear(args.hidden, shape.classes))
