"""The one exception type of the HEAR evaluation: a task or embedding folder that cannot be used as it is."""
from __future__ import annotations

from m2d_hear.errors import InputError


class HearTaskError(InputError):
    """A HEAR task folder or embedding folder that is missing a file or holds something unusable.

    The message names the file and says how to fix it; the CLI shows it as a one-line error.
    """
