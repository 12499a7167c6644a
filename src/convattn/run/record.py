"""`RunRecord`: the machine-readable result of one run (`metrics.json`), written by train, eval
and the failure path, read by the report.

`metrics.json` holds the run's result: its completed record once any attempt completed (a later
failed or interrupted attempt never replaces it), else its latest attempt. Every attempt is
also appended to `attempts.jsonl` beside it, so a run dir keeps its whole history.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from convattn.errors import ConvattnError
from convattn.utils.atomic import atomic_write
from convattn.utils.checks import (
    Check,
    Wrong,
    integer,
    mapping,
    optional,
    real,
    sequence,
    shown,
    text,
)

log = logging.getLogger("convattn")

RECORD_NAME = "metrics.json"
ATTEMPTS_NAME = "attempts.jsonl"
STATUSES = ("completed", "failed", "interrupted")


class RecordError(ConvattnError, ValueError):
    """A metrics.json (or attempts.jsonl line) that cannot be used; the message names the file,
    the key and what it should hold. A ConvattnError, so an entry point prints it as one
    paragraph; a ValueError for callers that catch it as bad data."""


# A record is data from disk: every field is checked against what convattn itself writes
# (`RunRecord.write`) before anything computes with it.
def checked(check: Check, value: Any, name: str, source: str) -> Any:
    """`check(value)`, or a RecordError naming `source`, the key and what it should hold."""
    try:
        return check(value)
    except Wrong as wrong:
        raise RecordError(
            f"{source}: {name}{wrong.where}={shown(wrong.value)} is not valid: it must be "
            f"{wrong.expected}. convattn never writes that; the file was edited or comes from "
            "another program."
        ) from None
    except RecursionError:
        raise RecordError(f"{source}: {name} is nested too deeply to be a record value.") from None


TEXT_FIELDS = (
    "task", "arm", "size", "dataset", "output_dir", "wandb_run_id", "best_ckpt", "ckpt_path",
    "split", "error",
)  # fmt: skip
COUNT = integer(0)
SIZE = integer(1)
SECONDS = real(0, inf=True, nan=True)
FIELD_CHECKS: dict[str, Check] = {
    "status": text(STATUSES),
    **dict.fromkeys(TEXT_FIELDS, optional(text())),
    "seed": optional(integer()),
    "model": optional(mapping(lambda v: v)),  # plain JSON below: shown, never built from
    **dict.fromkeys(("img_size", "in_chans", "num_classes"), optional(SIZE)),
    "train_fraction": optional(real(0, 1, open_low=True)),
    **dict.fromkeys(
        ("train_images", "params", "trainable_params", "epochs", "global_step"), optional(COUNT)
    ),
    "profile": optional(mapping(real(nan=True, inf=True))),
    "train_time_s": optional(SECONDS),
    "wall_time_s": optional(SECONDS),
    "metrics": optional(mapping(real(nan=True, inf=True))),
    "confusion_matrix": optional(sequence(sequence(COUNT))),
    "per_class_acc": optional(sequence(real(0, 1, nan=True))),
}


def to_jsonable(value: Any) -> Any:
    """Tensors and numbers as plain floats/ints/lists; inf as a string (json has no inf)."""
    if hasattr(value, "tolist"):  # torch tensors, numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


def metrics_with_prefix(metrics: Mapping[str, Any], *prefixes: str) -> dict[str, float]:
    """The scalar metrics whose names start with one of `prefixes`, as floats."""
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefixes)}


@dataclass
class RunRecord:
    """One run: what it was (facts), how it ended (status, error) and what it measured."""

    status: str = "failed"
    task: str | None = None
    arm: str | None = None
    size: str | None = None
    dataset: str | None = None
    seed: int | None = None
    model: dict[str, Any] | None = None
    img_size: int | None = None
    in_chans: int | None = None
    num_classes: int | None = None
    train_fraction: float | None = None
    train_images: int | None = None
    params: int | None = None
    trainable_params: int | None = None
    profile: dict[str, float] = field(default_factory=dict)
    output_dir: str | None = None
    wandb_run_id: str | None = None
    epochs: int | None = None
    global_step: int | None = None
    best_ckpt: str | None = None
    ckpt_path: str | None = None
    split: str | None = None
    train_time_s: float | None = None
    wall_time_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    per_class_acc: list[float] | None = None
    error: str | None = None

    def update(self, **values: Any) -> RunRecord:
        """Set fields by name (unknown names are a programming error)."""
        for key, value in values.items():
            if key not in FIELD_NAMES:
                raise AttributeError(f"RunRecord has no field {key!r}")
            setattr(self, key, value)
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "record") -> RunRecord:
        """A record from parsed JSON, every field checked (`FIELD_CHECKS`); RecordError naming
        `source` and the key if it is not one. Unknown keys are ignored (newer versions may
        add fields)."""
        if not isinstance(data, dict):
            raise RecordError(f"{source}: expected a JSON object, found {type(data).__name__}")
        if "status" not in data:
            raise RecordError(f"{source}: no status; one of {', '.join(STATUSES)} is needed")
        clean = {
            name: checked(check, data[name], name, source)
            for name, check in FIELD_CHECKS.items()
            if name in data
        }
        for name in ("metrics", "profile"):  # null stands for none measured
            if clean.get(name, {}) is None:
                clean[name] = {}
        return cls(**clean)

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunRecord:
        """The run dir's metrics.json; RecordError naming the file if it is unreadable."""
        path = Path(run_dir) / RECORD_NAME
        return cls.from_dict(read_json(path), source=str(path))

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Append this attempt to attempts.jsonl and make it metrics.json, unless metrics.json
        holds a completed record that this attempt does not carry forward: records only move
        forward (see `replaces`)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), sort_keys=True)
        with open(run_dir / ATTEMPTS_NAME, "a") as f:
            f.write(text + "\n")
        path = run_dir / RECORD_NAME
        kept = completed_record(run_dir)
        if kept is not None and not self.replaces(kept):
            log.warning(
                "%s keeps the run's completed record; this attempt (%s%s) is in %s.",
                path,
                self.status,
                f", tested {self.ckpt_path}" if self.ckpt_path and self.global_step is None else "",
                ATTEMPTS_NAME,
            )
            return path
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))
        return path

    def replaces(self, kept: dict[str, Any]) -> bool:
        """Whether this attempt may replace the completed record `kept`: it completed, and it
        either trained (a resumed or extended run) or tested the weights `kept` reports on
        (train=false on the run's own best checkpoint). A failure never does, nor a test of
        other weights."""
        if self.status != "completed":
            return False
        trained = kept.get("global_step") is not None
        tested = kept.get("best_ckpt") if trained else kept.get("ckpt_path")
        return self.global_step is not None or same_file(self.ckpt_path, tested)


FIELD_NAMES = frozenset(f.name for f in fields(RunRecord))


def read_json(path: Path, text: str | None = None, source: str | None = None) -> Any:
    """Parsed JSON of `path` (or of `text`, a part of it called `source`); RecordError naming
    the file for anything that is not JSON: truncated, binary, an integer past Python's
    4300-digit limit, nesting too deep to parse."""
    try:
        return json.loads(path.read_text() if text is None else text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = " ".join(str(err).split())[:300]
        raise RecordError(f"{source or path}: {type(err).__name__}: {reason}") from None


def read_attempts(run_dir: str | os.PathLike) -> list[RunRecord]:
    """Every attempt of a run dir (attempts.jsonl, oldest first), each line checked like
    metrics.json; RecordError naming the file and line of the first that is not a record.
    No file: no attempts."""
    path = Path(run_dir) / ATTEMPTS_NAME
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: {type(err).__name__}: {err}") from None
    sources = [(line, f"{path} line {number}") for number, line in enumerate(lines, 1)]
    return [
        RunRecord.from_dict(read_json(path, line, source), source=source)
        for line, source in sources
        if line.strip()
    ]


def same_file(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and Path(a).resolve() == Path(b).resolve()


def completed_record(run_dir: Path) -> dict[str, Any] | None:
    """metrics.json if it claims a completed run. Read by status alone, never through the full
    check: a completed record that fails it (edited, or of an older version) must still not be
    replaced by a worse attempt."""
    try:
        data = read_json(Path(run_dir) / RECORD_NAME)
    except RecordError:
        return None
    return data if isinstance(data, dict) and data.get("status") == "completed" else None


def completed_record_exists(run_dir: Path) -> bool:
    return completed_record(run_dir) is not None
