"""Decode once, reuse everywhere: the in-memory splits of a dataset, cached as uint8 tensors.

The key is everything the tensors depend on: the source files (path, size, mtime), the image
size, the validation split and this cache's format version. Entries are written to a temporary
file and renamed into place, so concurrent jobs of a sweep never see half a file; an entry that
does not load (with `weights_only=True`) or has the wrong shape is rebuilt, never trusted.
Location: `$CONVATTN_CACHE_DIR`, else `$XDG_CACHE_HOME/convattn`, else `~/.cache/convattn`;
`CONVATTN_CACHE_DIR=off` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from convattn.utils.atomic import atomic_write

log = logging.getLogger("convattn")

FORMAT_VERSION = 1
Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]


def cache_dir() -> Path | None:
    setting = os.environ.get("CONVATTN_CACHE_DIR")
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convattn"


def cache_key(sources: Iterable[Path], settings: dict[str, Any]) -> str:
    """A hash of the source files' identity and the settings the decoded tensors depend on."""
    files = []
    for path in sorted(Path(p).resolve() for p in sources):
        stat = path.stat()
        files.append([str(path), stat.st_size, stat.st_mtime_ns])
    key = {"v": FORMAT_VERSION, "files": files, **settings}
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def valid(entry: Any, names: Iterable[str]) -> bool:
    if not isinstance(entry, dict) or set(entry) != set(names):
        return False
    for value in entry.values():
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            return False
        images, labels = value
        if not (torch.is_tensor(images) and torch.is_tensor(labels)):
            return False
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            return False
    return True


def read_entry(path: Path, names: Iterable[str]) -> Splits | None:
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated, foreign or corrupt: rebuild
        log.warning("Decode cache %s is unreadable (%s); rebuilding it.", path, type(err).__name__)
        return None
    if not valid(entry, names):
        log.warning("Decode cache %s does not hold the expected splits; rebuilding it.", path)
        return None
    return {name: (images, labels) for name, (images, labels) in entry.items()}


def write_entry(path: Path, splits: Splits) -> None:
    """Atomic (`convattn.utils.atomic`); a failure (full disk, read-only cache) costs the cache."""
    entry = {k: tuple(v) for k, v in splits.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(entry, f))
    except (OSError, RuntimeError) as err:
        log.warning("Could not write the decode cache %s (%s).", path, err)


def cached_splits(
    sources: Iterable[Path], settings: dict[str, Any], build: Callable[[], Splits]
) -> Splits:
    """`build()`'s splits, from the cache when an entry for these sources and settings exists."""
    folder = cache_dir()
    sources = list(sources)
    if folder is None or not sources:
        return build()
    path = folder / "decoded" / f"{cache_key(sources, settings)}.pt"
    splits = read_entry(path, ("train", "val", "test"))
    if splits is not None:
        log.info("Decoded images from the cache %s", path)
        return splits
    splits = build()
    write_entry(path, splits)
    return splits
