"""Errors a user can act on: each says what was wrong and where."""

from __future__ import annotations

import errno
from pathlib import Path


class JanusError(ValueError):
    """A problem with input, configuration or stored state that the user can fix.

    The command line prints it as one line (no traceback) and exits with status 2.
    """


_CHECK_PERMISSIONS = "check the permissions of the file and its folder, or give another path"
_FREE_SPACE = "free some space or give a path on another file system"
# errno of a failed file operation → (what went wrong, what the user can do about it)
_FILE_ERRORS = {
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EISDIR: ("it is a folder", "give the path of a file"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EEXIST: ("a file of that name is in the way", "remove it or give another path"),
    errno.EACCES: ("permission denied", _CHECK_PERMISSIONS),
    errno.EPERM: ("operation not permitted", _CHECK_PERMISSIONS),
    errno.EROFS: ("read-only file system", "give a path on a writable file system"),
    errno.ENOSPC: ("no space left on the device", _FREE_SPACE),
    errno.EDQUOT: ("disk quota exceeded", _FREE_SPACE),
    errno.ENAMETOOLONG: ("file name too long", "give a shorter path"),
}


def file_error(exc: OSError, path: str | Path | None = None, doing: str = "") -> JanusError:
    """A failed file operation as ``PATH: cannot DOING: what went wrong; what to do``, e.g.
    ``a.jsonl: cannot read input: it is a folder; give the path of a file``.

    ``path`` defaults to the file the operation named; ``doing`` may be left out.
    """
    what, fix = _FILE_ERRORS.get(exc.errno, (exc.strerror or str(exc), "check the path"))
    where = path if path is not None else exc.filename
    return JanusError(f"{where}: {f'cannot {doing}: ' if doing else ''}{what}; {fix}")
