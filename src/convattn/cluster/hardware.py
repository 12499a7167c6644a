"""Settings that depend on the hardware a run lands on: matmul precision, compile vs SyncBN."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator

log = logging.getLogger("convattn")


def tensor_core_precision(on_cuda: bool, precision: str) -> str | None:
    """The float32 matmul precision a run should use, or None to leave torch's default.

    On CUDA in full precision ("32-true"), "high" lets float32 matmuls and convolutions use
    TF32 tensor cores (about 10 mantissa bits, as timm and Lightning recommend for training);
    mixed precision runs its matmuls in bf16/fp16 anyway, and CPUs have no such mode.
    """
    return "high" if on_cuda and str(precision) in ("32-true", "32") else None


def use_tensor_cores(trainer: L.Trainer) -> None:
    on_cuda = isinstance(trainer.accelerator, CUDAAccelerator)
    precision = tensor_core_precision(on_cuda, trainer.precision)
    if precision is not None:
        torch.set_float32_matmul_precision(precision)
        log.info("float32 matmul precision: %s (TF32 tensor cores)", precision)
