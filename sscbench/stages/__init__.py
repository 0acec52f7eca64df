"""Stages: the work a command does, end to end.

Layer 5 of sscbench (see ``sscbench/__init__.py``). ``tuning`` (Optuna studies trained in
stacked rounds), ``evaluation`` (arms over seeds), ``workqueue`` (both shared through a storage),
``storage`` (opening it, leases, locks, heartbeats), ``arms`` (where each arm's hyperparameters
come from), ``workflow`` (``tune`` and ``evaluate`` wired to files), ``compare`` (replicates) and
``study`` (a comparison per workload, every arm against the reference, one matrix).

May import: every layer below (the foundation, ``stats``, ``engine``, ``contracts``, ``output``).
Must not import: ``cli``; nothing here prints.
"""
