"""sscbench's built-in regularizer plugins (installed as ``sscbench_plugins``).

Each module defines one plugin against ``sscbench.regularizer`` and is
registered in sscbench's ``pyproject.toml`` under the entry-point group
``sscbench.regularizers``, exactly as a third-party plugin would be.
"""
