"""Put a study's matrix into the README, between its two study-matrix markers (used by `make study`).

Usage: python tools/readme_matrix.py STUDY_JSON README
"""

from __future__ import annotations

import sys
from pathlib import Path

from sscbench.files import write_atomic
from sscbench.output import render, results

START, END = "<!-- study-matrix: generated from docs/study/study.json by make study -->", "<!-- /study-matrix -->"


def with_matrix(readme: str, study: results.StudyResult) -> str:
    """The README text with the block between the markers replaced by the study's markdown matrix."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render.study_markdown(study)}{END}{tail}"


if __name__ == "__main__":
    study = results.load(Path(sys.argv[1]), results.StudyResult)
    path = Path(sys.argv[2])
    write_atomic(path, with_matrix(path.read_text(), study))
