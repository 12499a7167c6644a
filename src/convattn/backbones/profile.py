"""Model cost: parameters, FLOPs, training throughput and inference latency on this machine."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convattn.backbones.capture import eval_mode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one eval-mode forward pass on zeros of `input_shape` (batch included).

    Counted by torch's FlopCounterMode: a multiply-add is 2 FLOPs; only matmul / conv /
    attention kernels are counted (norms, activations and pooling are not).
    """
    x = torch.zeros(input_shape)
    with eval_mode(model), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def _time_per_call(fn: Callable[[], object], steps: int, warmup: int) -> float:
    """Median seconds per call of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure_throughput(
    model: nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    steps: int = 5,
    warmup: int = 2,
) -> float:
    """Training images/s: forward + cross-entropy backward + AdamW step on random data.

    Trains a deep copy, so the caller's weights and BatchNorm statistics are untouched.
    """
    model = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(input_shape)
    y = torch.randint(0, num_classes, (input_shape[0],))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return input_shape[0] / _time_per_call(step, steps, warmup)


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    steps: int = 10,
    warmup: int = 2,
) -> float:
    """Median eval-mode forward time in milliseconds for one batch of `input_shape`."""
    x = torch.randn(input_shape)
    with eval_mode(model):
        return 1e3 * _time_per_call(lambda: model(x), steps, warmup)
