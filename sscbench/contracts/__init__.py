"""Contracts: plugins as the harness finds, checks and resolves them.

Layer 3 of sscbench (see ``sscbench/__init__.py``). The interfaces themselves are the
foundation's ``sscbench.regularizer`` and ``sscbench.workload`` (the modules plugins import);
this layer holds ``registry`` (discovery through entry points), ``checks`` (the contract as
runnable checks, ``sscbench check-plugin``) and ``task`` (a spec resolved once into the run it
describes: the workload plugin and its arguments, the architecture, the regularizer plugins and
the dataset of each data seed).

May import: the foundation, ``sscbench.stats`` and ``sscbench.engine``.
Must not import: ``output``, ``stages``, ``cli``.
"""
