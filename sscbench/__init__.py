"""sscbench: a typed, plugin-based harness for benchmarking regularizers.

The package holds the harness only. Regularizers and workloads are plugins discovered through
the ``sscbench.regularizers`` and ``sscbench.workloads`` entry-point groups; the built-in ones
live in the separate ``sscbench_plugins`` package.

Layers, lowest first; a module may import its own layer and the layers below it, never one
above (``tests/test_architecture.py`` enforces it):

0. the foundation, this package's own modules: ``spec`` (run specs), ``regularizer`` and
   ``workload`` (the plugin interfaces), ``data`` (datasets and their cache), ``saliency`` and
   ``seeding`` (what a plugin's batch context computes), ``redact`` (masking secrets) and
   ``files`` (atomic writes). These are what plugins import.
1. ``sscbench.stats``: pure statistics.
2. ``sscbench.engine``: stacked models, the trainer, diagnostics, the host's CPU.
3. ``sscbench.contracts``: plugin discovery, contract checks, the spec resolved into a run.
4. ``sscbench.output``: results files, tables, plots.
5. ``sscbench.stages``: tuning, evaluation, the work queue, storages, comparisons.
6. ``sscbench.cli``: the command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sscbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
