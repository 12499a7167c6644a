"""Decode once, reuse everywhere: the in-memory splits of a dataset, cached as uint8 tensors.

The key is everything the tensors depend on: the source files (path, size, mtime), the image
size, the validation split and this cache's format version. Entries are written to a temporary
file and renamed into place, so concurrent jobs of a sweep never see half a file; an entry that
does not load (with `weights_only=True`) or does not hold what the module decodes (`check_entry`:
types, dtypes, shapes, label range, pairing) is rebuilt with a warning, never trusted. Temp
files of writes killed before their rename are removed when the cache is next opened.
Location: `$CONVATTN_CACHE_DIR`, else `$XDG_CACHE_HOME/convattn`, else `~/.cache/convattn`;
`CONVATTN_CACHE_DIR=off` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from convattn.utils.atomic import atomic_write, remove_stale_temps

log = logging.getLogger("convattn")

FORMAT_VERSION = 1
Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]
SPLITS = ("train", "val", "test")
IMAGE_DTYPES = (torch.uint8, torch.float32)  # uint8 [0, 255], or float [0, 1] (digits)
# A temp file untouched this long belongs to a killed writer: a live one rewrites its file
# continuously and holds a lock on it (see `remove_stale_temps`); entries take seconds to write.
STALE_TEMP_S = 3600.0


@dataclass(frozen=True)
class Expected:
    """What the module decodes: images (N, in_chans, img_size, img_size), labels in
    [0, num_classes). An entry is checked against it, so a tampered, stale or foreign file in
    the cache is never trained on (the key alone says nothing about the file's content)."""

    in_chans: int
    img_size: int
    num_classes: int


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


def check_entry(entry: Any, expected: Expected, names: Iterable[str] = SPLITS) -> str | None:
    """Why `entry` is not a decode-cache entry for `expected`, or None when it is one."""
    names = tuple(names)
    if not isinstance(entry, dict) or set(entry) != set(names):
        keys = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        return f"it holds {keys}, not the splits {list(names)}"
    for name in names:
        value = entry[name]
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            return f"split {name!r} is not an (images, labels) pair"
        problem = check_split(*value, expected)
        if problem:
            return f"split {name!r}: {problem}"
    return None


def check_split(images: Any, labels: Any, expected: Expected) -> str | None:
    """Why (images, labels) is not one decoded split for `expected`, or None."""
    if not (torch.is_tensor(images) and torch.is_tensor(labels)):
        return f"{type(images).__name__} and {type(labels).__name__}, not two tensors"
    if images.layout != torch.strided or labels.layout != torch.strided:
        return "sparse tensors"
    if images.dtype not in IMAGE_DTYPES:
        return f"images of dtype {images.dtype}, not uint8 or float32"
    shape = (expected.in_chans, expected.img_size, expected.img_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != shape:
        return f"images of shape {tuple(images.shape)}, not (N, {', '.join(map(str, shape))})"
    if labels.dtype != torch.int64 or labels.ndim != 1:
        return f"labels of dtype {labels.dtype} and shape {tuple(labels.shape)}, not int64 (N,)"
    if len(images) != len(labels):
        return f"{len(images)} images but {len(labels)} labels"
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < expected.num_classes:
        low, high = int(labels.min()), int(labels.max())
        return f"labels from {low} to {high}, not 0 to {expected.num_classes - 1}"
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        return "images that are not all finite"
    return None


def read_entry(path: Path, expected: Expected, names: Iterable[str] = SPLITS) -> Splits | None:
    """The splits in `path`, or None (with a warning, unless it does not exist) to rebuild."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated, foreign or corrupt: rebuild
        log.warning("Decode cache %s is unreadable (%s); rebuilding it.", path, type(err).__name__)
        return None
    problem = check_entry(entry, expected, names)
    if problem:
        log.warning(
            "Decode cache %s does not hold the expected splits (%s); rebuilding it.", path, problem
        )
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
    sources: Iterable[Path],
    settings: dict[str, Any],
    build: Callable[[], Splits],
    expected: Expected,
) -> Splits:
    """`build()`'s splits, from the cache when a valid entry for these sources and settings
    exists (`check_entry` against `expected`)."""
    folder = cache_dir()
    sources = list(sources)
    if folder is None or not sources:
        return build()
    path = folder / "decoded" / f"{cache_key(sources, settings)}.pt"
    remove_stale_temps(path.parent, STALE_TEMP_S)
    splits = read_entry(path, expected)
    if splits is not None:
        log.info("Decoded images from the cache %s", path)
        return splits
    splits = build()
    problem = check_entry(splits, expected)
    if problem:  # it would be rebuilt on every start: say so once, keep the cache clean
        log.warning("Not caching the decoded splits in %s: %s.", path, problem)
    else:
        write_entry(path, splits)
    return splits
