"""sscbench: a typed, plugin-based harness for benchmarking regularizers.

The package holds the harness only (data, model stack, trainer, tuning,
evaluation, statistics, results, CLI). Regularizers are plugins discovered
through the ``sscbench.regularizers`` entry-point group; the built-in ones
live in the separate ``sscbench_plugins`` package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sscbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
