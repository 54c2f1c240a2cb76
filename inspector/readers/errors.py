"""The one exception readers raise for a file they cannot turn into spectra.

Ingest runs over thousands of files, in worker processes: it needs to know
which file failed and why, in one line, and the error must survive pickling
back to the parent process.
"""
from __future__ import annotations

import os


class SpectrumFileError(Exception):
    """`str(err)` is ``f"{path}: {problem}"``; `.path` and `.problem` keep the parts."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # default pickling would call __init__ with the message only
        return (type(self), (self.path, self.problem))


class SpectrumFileWarning(UserWarning):
    """One spectrum of a many-spectrum file (spPlate fiber, DESI row) was unusable and skipped."""
