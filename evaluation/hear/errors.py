"""The exception type of the HEAR evaluation: a task or embedding folder that cannot be used as it is."""
from __future__ import annotations

from evaluation.tasks.base import DatasetError


class HearTaskError(DatasetError):
    """A HEAR task folder or embedding folder that is missing a file or holds something unusable.

    A :class:`~evaluation.tasks.base.DatasetError` (so one ``except DatasetError`` catches every input problem of a
    task folder, HEAR or not, including the shared JSON reader's). The message names the file and says how to fix
    it; the CLI shows it as a one-line error.
    """
