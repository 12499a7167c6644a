"""Each arm's options: their types, size presets and rules, importable without torch or timm.

`convattn.config.check` checks `model.*` against these before the heavy stack loads;
`create_backbone` checks the same way before it builds, so a config and a checkpoint's saved
model config meet the same rules. An arm registers its options here (`@arm_options(name)`)
and its builder in `registry.py` (`@register_arm(name)`); a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from convattn.errors import ConvattnError, check_choice
from convattn.utils.checks import integer, real, sequence
from convattn.utils.typed import check_value

_OPTIONS: dict[str, type[ArmOptions]] = {}

STAGES = (1, 2, 3, 4)  # a timm ResNet's stages
RATE = real(0, 1, open_high=True)
WIDTH = integer(1, 8192)


def arm_options(name: str) -> Callable[[type[ArmOptions]], type[ArmOptions]]:
    """Register the options of arm `name`."""

    def wrap(cls: type[ArmOptions]) -> type[ArmOptions]:
        _OPTIONS[name] = cls
        return cls

    return wrap


def list_arm_options() -> list[str]:
    """The arms whose options are declared, sorted (the same as `list_arms()`)."""
    return sorted(_OPTIONS)


def options_of(arm: Any) -> type[ArmOptions]:
    check_choice("model.arm", arm, list_arm_options())
    return _OPTIONS[arm]


def check_patch_size(patch_size: int, img_size: int, note: str = "") -> None:
    """Raise ConvattnError unless `patch_size` tiles an `img_size` image exactly."""
    if patch_size < 1 or img_size % patch_size:
        valid = [p for p in range(1, img_size + 1) if img_size % p == 0]
        raise ConvattnError(
            f"model.patch_size={patch_size}{note} does not divide the image size {img_size}, "
            f"so the image cannot be cut into whole patches; valid patch sizes for "
            f"{img_size}x{img_size} images: {', '.join(map(str, valid))} (or change data img_size)."
        )


def check_heads(embed_dim: int, num_heads: int) -> None:
    if embed_dim % num_heads:
        raise ConvattnError(
            f"model.embed_dim={embed_dim} is not divisible by model.num_heads={num_heads}; "
            "each head gets embed_dim / num_heads channels, so pick num_heads among the "
            f"divisors of {embed_dim}."
        )


def stem_depth(patch_size: int, img_size: int) -> int:
    """Number of stride-2 stem layers whose total stride is `patch_size` (a power of two)."""
    if patch_size < 2 or patch_size & (patch_size - 1):
        valid = [2**k for k in range(1, 6) if img_size % 2**k == 0]
        raise ConvattnError(
            f"model.patch_size={patch_size} is not a power of two, but the hybrid arm's conv "
            f"stem is a stack of stride-2 layers, so its total stride (the patch size) must be "
            f"one; valid patch sizes for {img_size}x{img_size} images: "
            f"{', '.join(map(str, valid))}."
        )
    check_patch_size(patch_size, img_size, note=" (the hybrid stem's total stride)")
    return patch_size.bit_length() - 1


def check_stem_channels(channels: int, depth: int) -> None:
    if channels >> (depth - 1) < 1:
        raise ConvattnError(
            f"model.stem_channels={channels} is too narrow for a {depth}-layer stem: widths "
            f"halve towards the input, so use at least {2 ** (depth - 1)}."
        )


def check_stage_widths(channels: Any) -> None:
    check_value("model.channels", sequence(WIDTH, len(STAGES)), channels,
                "the four ResNet stage widths, e.g. [16, 32, 64, 128]")  # fmt: skip


@dataclass
class ArmOptions:
    """What every arm takes besides the data's shape (in_chans, num_classes, img_size)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    _target_: str = "convattn.backbones.create_backbone"
    arm: str = ""
    size: str | None = "tiny"
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def arguments(self) -> dict[str, Any]:
        """The builder's keyword arguments: the size preset, then the values set (non-null)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        set_here = {k: v for k, v in own.items() if k not in ("_target_", "arm", "size")}
        return {**self.preset(), **{k: v for k, v in set_here.items() if v is not None}}

    def preset(self) -> dict[str, Any]:
        if self.size is None:
            return {}
        if self.size not in self.PRESETS:
            raise ConvattnError(
                f"model.size={self.size!r} is not a preset of the {self.arm!r} arm; valid "
                f"presets: {', '.join(self.PRESETS)} (or model.size=null to set every width "
                "by hand)."
            )
        return dict(self.PRESETS[self.size])

    def check(self, img_size: int) -> dict[str, Any]:
        """The builder's arguments, or one paragraph for the first rule they break. The rules
        see every argument: a width left unset (size=null) is the builder's default, which
        is the tiny preset's."""
        args = self.arguments()
        self.check_arguments({**self.PRESETS.get("tiny", {}), **args}, img_size)
        return args

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        for key in ("drop_rate", "drop_path_rate"):
            check_value(f"model.{key}", RATE, args[key], "a probability, e.g. 0.1")
        return args


# ResNet stage widths; tiny ~0.7M params, small ~2.8M, base = resnet18 (~11M) for 10 classes.
CNN_PRESETS = {
    "tiny": {"channels": (16, 32, 64, 128)},
    "small": {"channels": (32, 64, 128, 256)},
    "base": {"channels": (64, 128, 256, 512)},
}


@arm_options("cnn")
@dataclass
class CNNOptions(ArmOptions):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = CNN_PRESETS
    name: str = "resnet18"
    channels: list[int] | None = None

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        if args.get("channels") is not None:
            check_stage_widths(args["channels"])
        return args


# Channel + spatial (cbam, lcbam = timm's lighter variant) or channel-only (se, eca) gates.
ATTN_LAYERS = ("cbam", "lcbam", "se", "eca", "none")


def check_attn_args(attn_layer: str, attn_stages: Any) -> tuple[int, ...]:
    """Validate the cbam arm's two ablation axes; returns the stages as a tuple of ints."""
    if attn_layer not in ATTN_LAYERS:
        raise ConvattnError(
            f"model.attn_layer={attn_layer!r} is not an attention type of the cbam arm; valid: "
            f"{', '.join(ATTN_LAYERS)} (cbam/lcbam gate channels and space, se/eca only "
            "channels, none is the plain cnn arm)."
        )
    stages = tuple(int(s) for s in attn_stages)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ConvattnError(
            f"model.attn_stages={list(attn_stages)!r} names stage(s) {bad} that do not exist; "
            f"a ResNet has stages {', '.join(map(str, STAGES))}, e.g. attn_stages=[3,4]."
        )
    return stages


@arm_options("cbam")
@dataclass
class CBAMOptions(CNNOptions):
    # CBAM's reduced MLP adds ~C^2/8 per block against ~18 C^2 for its convs: cnn widths keep
    # the parameter count within ~1 % of the cnn arm.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = CNN_PRESETS
    attn_layer: str = "cbam"
    attn_stages: list[int] = dataclasses.field(default_factory=lambda: list(STAGES))

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        check_attn_args(args["attn_layer"], args["attn_stages"])
        return args


# Widths chosen so that parameters land within ±15 % of the cnn arm at the same preset
# (32x32, 10 classes); `scripts/model_table.py` prints the measured ratios.
VIT_PRESETS = {
    "tiny": {"patch_size": 4, "embed_dim": 96, "depth": 6, "num_heads": 3},
    "small": {"patch_size": 4, "embed_dim": 192, "depth": 6, "num_heads": 3},
    "base": {"patch_size": 4, "embed_dim": 384, "depth": 6, "num_heads": 6},
}
GLOBAL_POOLS = ("token", "avg")


@dataclass
class TransformerOptions(ArmOptions):
    """The transformer blocks every token arm shares."""

    embed_dim: int | None = None  # null: the size preset's
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    global_pool: str = "token"

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        for key in ("embed_dim", "depth", "num_heads"):
            check_value(f"model.{key}", WIDTH, args[key])
        check_value("model.mlp_ratio", real(0, 64, open_low=True), args["mlp_ratio"])
        check_choice("model.global_pool", args["global_pool"], GLOBAL_POOLS)
        check_heads(args["embed_dim"], args["num_heads"])
        return args


@arm_options("vit")
@dataclass
class ViTOptions(TransformerOptions):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = VIT_PRESETS
    patch_size: int | None = None

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        check_patch_size(args["patch_size"], img_size)
        return args


# Same transformer as the vit arm; the stem (~2-3 % of the parameters) replaces the patchify conv.
HYBRID_PRESETS = {
    size: {**kwargs, "stem_channels": kwargs["embed_dim"] // 2}
    for size, kwargs in VIT_PRESETS.items()
}


@arm_options("hybrid")
@dataclass
class HybridOptions(TransformerOptions):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = HYBRID_PRESETS
    patch_size: int | None = None
    stem_channels: int | None = None

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        check_stem_channels(args["stem_channels"], stem_depth(args["patch_size"], img_size))
        return args


# Three of the cnn arm's four stages (their widths), then 4 blocks of the vit arm's width:
# parameters within ±15 % of the cnn arm at every preset (`scripts/model_table.py`).
RESVIT_PRESETS = {
    size: {
        "channels": CNN_PRESETS[size]["channels"],
        "embed_dim": embed_dim,
        "num_heads": num_heads,
        "depth": 4,
        "stem_stages": 3,
    }
    for size, embed_dim, num_heads in (("tiny", 96, 3), ("small", 192, 3), ("base", 384, 6))
}


@arm_options("resvit")
@dataclass
class ResVitOptions(TransformerOptions):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = RESVIT_PRESETS
    global_pool: str = "avg"
    channels: list[int] | None = None
    stem_stages: int | None = None

    def check_arguments(self, args: dict[str, Any], img_size: int) -> dict[str, Any]:
        args = super().check_arguments(args, img_size)
        check_stage_widths(args["channels"])
        if args["stem_stages"] not in STAGES:
            raise ConvattnError(
                f"model.stem_stages={args['stem_stages']} is not a ResNet stage; valid: "
                f"{', '.join(map(str, STAGES))} (the tokens are that stage's feature map)."
            )
        return args
