"""Statistics: pure functions of numbers, nothing else.

Layer 1 of sscbench (see ``sscbench/__init__.py``). ``paired`` compares arms over paired seeds
(one run); ``replicates`` compares them over replicates (``compare``); ``sequential`` decides while
replicates arrive (``compare --replicates auto``). Every function takes arrays
and returns numbers or small frozen records; none trains, reads a file or prints.

May import: numpy, scipy, and other modules of this package.
Must not import: anything else of sscbench (not even the foundation's modules).
"""
