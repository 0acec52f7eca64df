"""Output: what sscbench writes and shows.

Layer 4 of sscbench (see ``sscbench/__init__.py``). ``results`` is the versioned JSON schema of
every results file (provenance, strict loading, masked serialisation); ``render`` builds rich
tables and ``plot`` matplotlib figures, ``html`` the self-contained report page (template
``report.html.j2``) and ``export`` tidy rows (CSV, Parquet), all from those records only.

May import: the foundation, ``stats``, ``engine`` and ``contracts``.
Must not import: ``stages`` or ``cli`` (nothing here runs a stage).
"""
