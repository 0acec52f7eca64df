"""Output: what sscbench writes and shows.

Layer 4 of sscbench (see ``sscbench/__init__.py``). ``results`` is the versioned JSON schema of
every results file (provenance, strict loading, masked serialisation); ``render`` builds rich
tables and ``plot`` matplotlib figures, both from those records only.

May import: the foundation, ``stats``, ``engine`` and ``contracts``.
Must not import: ``stages`` or ``cli`` (nothing here runs a stage).
"""
