"""Files written whole or not at all.

What it is: ``write_atomic``, the one way sscbench writes a file (results, checkpoints, the data
cache, scrubbed files): a temporary file in the same folder, fsynced, then renamed over the target.
What it is not: any file's format (``sscbench.output.results``, ``sscbench.data``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str | bytes, mode: int | None = None) -> None:
    """Write via a temporary file in the same folder and rename: never a truncated file.

    The file gets ``mode`` where given, else the mode an ordinary new file gets (0666 less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask if mode is None else mode)  # mkstemp creates 0600; results are ordinary files
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
