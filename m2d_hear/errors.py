"""One base class for errors caused by the user's input, and the one-line message the commands print for them.

Every reader in the project raises a subclass of :class:`InputError` for input it cannot use (a corrupt audio
file, a missing dataset file, a checkpoint of the wrong shape, an unsafe weight file...). The command-line tools
print such an error as one line and exit with status 1. Every other exception is a bug in our code and keeps its
traceback.
"""
from __future__ import annotations

import errno


class InputError(ValueError):
    """Input the project cannot use; the message names the file (or option) and the fix."""


# errno values that mean "this place cannot be written" rather than a bug of ours
_WRITE_ERRNOS = {
    errno.EACCES: "permission denied; choose a writable folder (e.g. another --out) or fix its permissions",
    errno.EPERM: "operation not permitted; choose a writable folder (e.g. another --out) or fix its permissions",
    errno.EROFS: "read-only file system; choose a writable folder (e.g. another --out)",
    errno.ENOSPC: "no space left on the device; free space or choose another folder (e.g. another --out)",
    errno.EDQUOT: "disk quota exceeded; free space or choose another folder (e.g. another --out)",
}


def user_message(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or ``None`` for an error that is a bug (keep its
    traceback). Input errors give their first line; a missing file, a read-only folder or a full disk give the
    file and what to do."""
    if isinstance(err, InputError):
        text = str(err).strip()
        return text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, FileNotFoundError):
        where = err.filename or ""
        return f"{where}: no such file or folder" if where else (str(err) or "file not found")
    if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
        where = err.filename or "output"
        return f"{where}: {_WRITE_ERRNOS[err.errno]}"
    return None
