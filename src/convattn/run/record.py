"""`RunRecord`: the machine-readable result of one run (`metrics.json`), written by train, eval
and the failure path, read by the report.

`metrics.json` holds the run's result: its completed record once any attempt completed (a later
failed or interrupted attempt never replaces it), else its latest attempt. Every attempt is
also appended to `attempts.jsonl` beside it, so a run dir keeps its whole history.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from convattn.utils.atomic import atomic_write

RECORD_NAME = "metrics.json"
ATTEMPTS_NAME = "attempts.jsonl"
STATUSES = ("completed", "failed", "interrupted")


class RecordError(ValueError):
    """A metrics.json that cannot be used; the message names the file and why."""


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
        """A record from parsed JSON; RecordError if it is not one. Unknown keys are ignored."""
        if not isinstance(data, dict):
            raise RecordError(f"{source}: expected a JSON object, found {type(data).__name__}")
        status = data.get("status")
        if status not in STATUSES:
            raise RecordError(f"{source}: status {status!r} is not one of {', '.join(STATUSES)}")
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) for v in metrics.values()
        ):
            raise RecordError(f"{source}: 'metrics' must map names to numbers")
        return cls(**{k: v for k, v in data.items() if k in FIELD_NAMES})

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> RunRecord:
        """The run dir's metrics.json; RecordError naming the file if it is unreadable."""
        path = Path(run_dir) / RECORD_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RecordError(f"{path}: {type(err).__name__}: {err}") from None
        return cls.from_dict(data, source=str(path))

    def write(self, run_dir: str | os.PathLike) -> Path:
        """Append this attempt to attempts.jsonl and make it metrics.json, unless metrics.json
        already holds a completed record and this attempt did not complete."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), sort_keys=True)
        with open(run_dir / ATTEMPTS_NAME, "a") as f:
            f.write(text + "\n")
        path = run_dir / RECORD_NAME
        if self.status != "completed" and completed_record_exists(run_dir):
            return path
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))
        return path


FIELD_NAMES = frozenset(f.name for f in fields(RunRecord))


def completed_record_exists(run_dir: Path) -> bool:
    try:
        return RunRecord.read(run_dir).status == "completed"
    except RecordError:
        return False
