"""`metrics.json`: the machine-readable record of one run that reports read."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

RECORD_NAME = "metrics.json"


def to_jsonable(value: Any) -> Any:
    """Tensors and numbers as plain floats/ints/lists; NaN stays NaN (json writes it as NaN)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


@rank_zero_only
def write_record(output_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write (or replace) the run's metrics.json atomically."""
    path = Path(output_dir) / RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_jsonable(record), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_record(output_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / RECORD_NAME).read_text())
