"""What planning checks before a path reaches a worker: a regular file, reachable, of a sane size.

Why at planning and not in the reader: a FIFO named *.fits blocks the open() for ever, a link to
/dev/zero never reaches its end, and a symlink loop made `Path.resolve` raise RuntimeError out of
the planner, so one such path stopped a whole ingest. A stat (which follows links and reports a
loop as ELOOP) settles each of them without opening anything; what is refused here is recorded
in rejected.parquet like any rejection, and a rerun skips it while it is unchanged.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

MAX_FILE_BYTES = 4 * 2**30  # a DESI coadd is a few hundred MB; a FITS spectrum file past 4 GiB is not one


@dataclass(frozen=True)
class Checked:
    """A planned path: `path` to read (symlinks resolved), or, with `problem`, why it is refused."""
    path: str
    problem: str | None = None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a plain file"


def _link_note(path: str) -> str:
    if not os.path.islink(path):
        return ""
    try:
        return f" (a symbolic link to {os.path.realpath(path)})"
    except OSError:  # pragma: no cover - realpath is not strict; kept for odd filesystems
        return " (a symbolic link)"


def check_file(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> Checked:
    """Stat `path` (following links) and say whether a worker may open it.

    A missing file is not refused here: the worker rejects it as "file not found", and a rerun
    retries it once it exists (the catalog-as-source case). A dangling link is refused, naming
    its target, since only the link's owner can fix it.
    """
    given = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(given)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return Checked(given, "symbolic link loop: the link leads back to itself, there is no file to read")
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(given):
                return Checked(given, f"file not found: a symbolic link to {os.readlink(given)}, which does not exist")
            return Checked(os.path.realpath(given))
        return Checked(given, f"cannot stat the file ({err.strerror or err})")
    if not stat.S_ISREG(st.st_mode):
        return Checked(given, f"not a regular file: {_kind(st.st_mode)}{_link_note(given)}; only plain files are read")
    if st.st_size > max_bytes:
        return Checked(given, f"too large: {st.st_size / 2**30:.1f} GiB, over the {max_bytes / 2**30:g} GiB limit "
                              "per file (--max-file-size)")
    return Checked(os.path.realpath(given))
