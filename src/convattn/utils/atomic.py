"""Files that are always either the old version or the whole new one (records, checkpoints,
caches): a unique temp file in the same folder, flushed to disk, renamed over the target.

The temp file is `.{name}.XXXXXXXX.tmp` beside the target. A writer killed before the rename
(SIGKILL, a node lost) leaves it behind; `remove_stale_temps` clears such leftovers from a
folder. A writer holds an exclusive `flock` on its temp file until the rename, so the cleanup
can tell a live writer (in any process on this machine) from a dead one.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock; the age threshold alone protects a live writer
    fcntl = None  # type: ignore[assignment]

# mkstemp's names: the prefix, 8 characters from [a-z0-9_], the suffix (matched whole: a name
# may hold any character but "/", newlines too).
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp", re.DOTALL)
_umask_lock = threading.Lock()


def current_umask() -> int:
    """This process's umask, without changing it even for a moment where that can be avoided.

    `os.umask` only reads by setting: between the set and the reset another thread could create
    a file with the wrong mode. Linux (4.7+) reports it in /proc/self/status; elsewhere the
    set-and-reset is done under a lock (which only orders our own callers).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temp file beside `path`, then rename it over `path`.

    The file gets the mode `open()` would give a new file (0o666 less the umask), not
    mkstemp's 0o600: shared project folders and caches stay readable to collaborators.
    On any error the temp file is removed, `path` is untouched and the error propagates.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:  # released when the file is closed, after the rename
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove the temp files that interrupted `atomic_write`s left in `folder`; return them.

    Only names of atomic_write's pattern (`.{name}.XXXXXXXX.tmp`), only regular files, only
    those not modified for `older_than_s` seconds and not locked by a writer. Two guards
    against removing a live writer's file (which would make its rename fail): its `flock`
    (any process on this machine; on NFS, where locks may not reach other hosts, the age is
    what protects) and the age (a writer rewrites its file continuously, and a checkpoint or
    a cache entry is written in seconds to minutes, not an hour). Errors (a folder that does
    not exist or cannot be listed, a file gone meanwhile) are skipped: this is housekeeping.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than_s:
                continue
            if remove_unless_locked(Path(entry.path)):
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def remove_unless_locked(path: Path) -> bool:
    """Unlink `path` unless another open file description holds a flock on it."""
    if fcntl is None:
        path.unlink()
        return True
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a writer is alive
        path.unlink()
        return True
    finally:
        os.close(fd)
