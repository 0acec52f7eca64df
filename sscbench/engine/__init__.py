"""The engine: stacks of models trained as one, and what it takes to run them.

Layer 2 of sscbench (see ``sscbench/__init__.py``). ``model`` and ``stack`` hold S members in
one flat parameter buffer; ``trainer`` trains a stack (AdamW, divergence isolation, splitting for
memory, worker threads); ``diagnostics`` measures trained members; ``host`` names the CPU and pins
torch's kernel level. The engine knows nothing of Optuna, specs beyond ``TrainSpec``, or files.

May import: the foundation (``sscbench.spec``, ``sscbench.data``, ``sscbench.regularizer``, ...) and ``stats``.
Must not import: ``contracts``, ``output``, ``stages``, ``cli``.
"""
