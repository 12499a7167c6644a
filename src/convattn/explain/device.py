"""Where the explainers run: `--device auto|cpu|cuda|cuda:N`, checked before anything loads."""

from __future__ import annotations

import re
from itertools import chain

import torch
from torch import nn

from convattn.errors import ConvattnError

DEVICE_FORMS = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N"
CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(value: str | torch.device | None) -> torch.device:
    """The torch device `value` names; "auto" and None mean CUDA when available, else the CPU.

    Raises ConvattnError (one paragraph naming the value and the valid forms) for anything else,
    and for a CUDA device this machine does not have.
    """
    if isinstance(value, torch.device):
        value = str(value)
    text = "auto" if value is None else str(value).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = CUDA.fullmatch(text)
    if match is None:
        raise ConvattnError(
            f"device={value!r} is not a device convattn-explain can run on; valid: "
            f"{DEVICE_FORMS} (N = a GPU index, e.g. cuda:0)."
        )
    if not torch.cuda.is_available():
        raise ConvattnError(
            f"device={value!r} asks for a CUDA GPU, but torch sees none on this machine "
            "(torch.cuda.is_available() is False); pass device=cpu, or device=auto to use a GPU "
            f"only when there is one (valid: {DEVICE_FORMS})."
        )
    index = match.group(1)
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise ConvattnError(
            f"device={value!r} names GPU {index}, but torch sees {count} CUDA device(s) "
            f"(cuda:0 to cuda:{count - 1}); valid: {DEVICE_FORMS}."
        )
    return torch.device(text)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    tensor = next(chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device
