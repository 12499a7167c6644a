"""Augmentation of whole batches on the training device: no PIL, no per-sample Python loop.

Every op takes a batch `x` of shape (B, C, H, W) and draws its per-sample randomness as
tensors on `x.device` (from `generator` if given, else torch's global RNG, which
`seed_everything` seeds). Geometric ops (crop, flip, translate) work on any dtype, so they run
on the uint8 batch before it is widened to float; photometric ops expect floats in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Generator = torch.Generator | None


def shift_flip(
    x: torch.Tensor,
    shift_y: torch.Tensor,
    shift_x: torch.Tensor,
    flip: torch.Tensor | None = None,
    pad: int | None = None,
    fill: float = 0,
) -> torch.Tensor:
    """Shift each image by its own integer (shift_y, shift_x) pixels, then mirror it left-right
    where `flip` is true; uncovered pixels get `fill`.

    One gather from a `pad`-padded copy (pad >= the largest |shift|; computed if None, which
    syncs a GPU): each output pixel's source index is built per sample, so crop + flip cost
    one pass over the batch whatever the batch size.
    """
    b, c, h, w = x.shape
    shift_y, shift_x = shift_y.to(x.device), shift_x.to(x.device)
    if pad is None:
        pad = int(torch.maximum(shift_y.abs().max(), shift_x.abs().max()))
    shift_y, shift_x = shift_y.clamp(-pad, pad), shift_x.clamp(-pad, pad)
    padded = F.pad(x, (pad, pad, pad, pad), value=fill) if pad else x
    rows = torch.arange(h, device=x.device) + pad - shift_y[:, None]  # (B, H) in padded
    cols = torch.arange(w, device=x.device).expand(b, w)
    if flip is not None:
        cols = torch.where(flip.to(x.device)[:, None], cols.flip(-1), cols)
    cols = cols + pad - shift_x[:, None]  # (B, W) in padded
    index = rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]
    index = index.view(b, 1, h * w).expand(b, c, h * w)
    return padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


def translate(
    x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor, fill: float = 0
) -> torch.Tensor:
    """Shift each image by its own integer (shift_y, shift_x) pixels; uncovered pixels = fill."""
    return shift_flip(x, shift_y, shift_x, fill=fill)


def random_crop(
    x: torch.Tensor, padding: int, hflip: bool = False, generator: Generator = None
) -> torch.Tensor:
    """torchvision's `RandomCrop(size, padding)` with fill 0, each sample at its own offset,
    and with `hflip` also `RandomHorizontalFlip()`, fused into one gather.

    Padding by p and cropping at offset o in [0, 2p] is a translation by p - o with zero fill.
    """
    if padding <= 0 and not hflip:
        return x
    shifts = torch.randint(-padding, padding + 1, (2, len(x)), device=x.device, generator=generator)
    flip = torch.rand(len(x), device=x.device, generator=generator) < 0.5 if hflip else None
    return shift_flip(x, shifts[0], shifts[1], flip, pad=max(padding, 0))


def random_hflip(x: torch.Tensor, p: float = 0.5, generator: Generator = None) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = torch.rand(len(x), device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is taken to be in [0, 1] already."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


# RandAugment-style ops: f(x in [0, 1], level in [-1, 1] per sample) -> x in [0, 1].
# Ranges follow timm's rand-m* at magnitude 10: enhance factor 1 ± 0.9, translate ± 45 %,
# rotate ± 30 degrees; fill for geometric ops is mid-grey, as timm fills with the mean pixel.
def brightness(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return (x * (1 + 0.9 * level)[:, None, None, None]).clamp_(0, 1)


def contrast(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # blend with the image's mean grey, as PIL does
    return (mean + (x - mean) * (1 + 0.9 * level)[:, None, None, None]).clamp_(0, 1)


def translate_x(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    shift = (0.45 * level * x.shape[-1]).round().long()
    pad = math.ceil(0.45 * x.shape[-1])  # the bound, so that no GPU sync is needed
    return shift_flip(x, torch.zeros_like(shift), shift, pad=pad, fill=0.5)


def translate_y(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    shift = (0.45 * level * x.shape[-2]).round().long()
    pad = math.ceil(0.45 * x.shape[-2])
    return shift_flip(x, shift, torch.zeros_like(shift), pad=pad, fill=0.5)


def rotate(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    angle = level * math.radians(30)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample x - 0.5 with zero padding, so that pixels rotated in from outside are mid-grey.
    return F.grid_sample(x - 0.5, grid, align_corners=False).add_(0.5)


RAND_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "brightness": brightness,
    "contrast": contrast,
    "translate_x": translate_x,
    "translate_y": translate_y,
    "rotate": rotate,
}


def apply_chosen(
    x: torch.Tensor,
    chosen: torch.Tensor,
    fns: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    level: torch.Tensor,
) -> torch.Tensor:
    """Apply `fns[j]` to the images i with `chosen[i, j]`, for j = 0, 1, ... in turn, so an
    image's later ops see the output of its earlier ones; `level` (B,) is each image's level.

    Each op runs on the whole batch and `torch.where` keeps its output only for the images that
    chose it. Gathering just those images would need their count on the host, a GPU sync per
    op; the ops are per image (no image's output depends on another's), so the results agree.
    The price is len(fns) full-batch ops instead of about `num_ops`, small next to a step.
    """
    for j, fn in enumerate(fns):
        keep = chosen[:, j].view(-1, *(1,) * (x.dim() - 1))
        y = fn(x, level)
        if y.dtype != x.dtype:  # where would promote silently; x[index] = y raised here
            raise TypeError(f"op {j} turned a {x.dtype} batch into {y.dtype}")
        # where, not a 0/1 blend: what an op does to an image that skips it (NaN, even) is
        # discarded rather than mixed in.
        x = torch.where(keep, y, x)
    return x


def rand_augment(
    x: torch.Tensor,
    magnitude: float,
    num_ops: int = 2,
    ops: Sequence[str] = tuple(RAND_OPS),
    generator: Generator = None,
) -> torch.Tensor:
    """RandAugment (Cubuk et al. 2020) on a float batch in [0, 1]: each image gets `num_ops`
    distinct ops drawn uniformly from `ops`, each at `magnitude` (0-10) with a random sign.

    Without a device->host sync: the per-image choice is a (B, len(ops)) mask that
    `apply_chosen` applies with `torch.where`, and the input is left unchanged.
    """
    if magnitude <= 0 or num_ops <= 0:
        return x
    b, k = len(x), len(ops)
    # A random permutation per image; its first num_ops entries are the image's ops.
    order = torch.rand(b, k, device=x.device, generator=generator).argsort(dim=1)
    chosen = torch.zeros(b, k, dtype=torch.bool, device=x.device)
    chosen.scatter_(1, order[:, : min(num_ops, k)], True)
    sign = torch.randint(0, 2, (b,), device=x.device, generator=generator) * 2 - 1
    level = sign.to(x.dtype) * min(magnitude, 10) / 10
    return apply_chosen(x, chosen, [RAND_OPS[name] for name in ops], level)


class BatchTransform:
    """Training augmentation + uint8->float + mean/std normalisation of one batch.

    `train=False` (validation, test) only converts and normalises. Mean and std are per channel
    in [0, 1] units; they are cached on each device they are used on.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        hflip: bool = False,
        randaugment: float = 0,
        randaugment_ops: int = 2,
    ) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.randaugment = randaugment
        self.randaugment_ops = randaugment_ops
        self._affine: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def affine(self, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with normalised = x * a + b for x in units of `1 / scale`."""
        key = (x.device, x.dtype)
        if key not in self._affine:
            a, b = 1 / (scale * self.std), -self.mean / self.std
            self._affine[key] = (a.to(x.device), b.to(x.device))
        return self._affine[key]

    def __call__(self, x: torch.Tensor, train: bool, generator: Generator = None) -> torch.Tensor:
        if train:
            x = random_crop(x, self.crop_padding, self.hflip, generator)
            if self.randaugment > 0:
                x = to_float(x)  # photometric ops work in [0, 1]
                x = rand_augment(x, self.randaugment, self.randaugment_ops, generator=generator)
        # One fused multiply-add widens and normalises: (x / 255 - mean) / std.
        scale = 255.0 if x.dtype == torch.uint8 else 1.0
        a, b = self.affine(x, scale)
        return torch.addcmul(b, x.float(), a)
