"""The one table of map methods: name, panel title, the arms each applies to, how to compute it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from convattn.backbones.base import Backbone
from convattn.errors import check_choice
from convattn.explain.gradcam import grad_cam
from convattn.explain.rollout import head_token_maps, rollout_token_map


@dataclass(eq=False)  # tensors have no single truth value to compare by
class Probe:
    """What the methods read: the backbone, images (B, C, H, W), the class to explain per image
    (None: the predicted one), and the arm's attention read-outs, computed once for all."""

    backbone: Backbone
    images: torch.Tensor
    targets: torch.Tensor | None = None

    @cached_property
    def attentions(self) -> dict[str, torch.Tensor]:
        """`Backbone.attention_maps` of the images, in forward order."""
        with torch.no_grad():
            return self.backbone.attention_maps(self.images)


@dataclass(frozen=True)
class MapMethod:
    """One explainer in the table.

    `name`: the map's name, or for a `family` (one map per head, per stage, ...) the prefix of
    its maps' names, `<name>_<member>`. `title`: the panel title; a family's has `{}` for the
    member. `applies_to`: whether an arm gets this method, decided from the `Backbone`
    interface alone. `compute`: raw maps at the model's resolution, one tensor (B, h, w), or
    for a family {member: (B, h, w)}. `main`: shown in cross-arm comparisons (for a family,
    its deepest member). `deletion`: the map the deletion metric ranks pixels by.
    """

    name: str
    title: str
    applies_to: Callable[[Backbone], bool]
    compute: Callable[[Probe], torch.Tensor | dict[str, torch.Tensor]]
    family: bool = False
    main: bool = False
    deletion: bool = False

    def owns(self, map_name: str) -> bool:
        """Whether `map_name` is this method's map (or one of its family's)."""
        if self.family:
            return map_name.startswith(f"{self.name}_") and len(map_name) > len(self.name) + 1
        return map_name == self.name

    def panel_title(self, map_name: str) -> str:
        """The title of the panel showing `map_name`, e.g. 'head_2' -> 'head 2 (last block)'."""
        if not self.family:
            return self.title
        return self.title.format(map_name.removeprefix(f"{self.name}_"))

    def maps(self, probe: Probe) -> dict[str, torch.Tensor]:
        """This method's raw maps by map name (a family with no members gives {})."""
        out = self.compute(probe)
        if not self.family:
            return {self.name: out}
        return {f"{self.name}_{member}": m for member, m in out.items()}


# ---------------------------------------------------------------- which arms


def every_arm(backbone: Backbone) -> bool:
    """Every `Backbone` has the feature map Grad-CAM reads (`gradcam_layer`, `feature_map`)."""
    return True


def token_model(backbone: Backbone) -> bool:
    """Transformer arms: their `attention_maps` are softmax probabilities over `token_layout`."""
    return backbone.token_layout is not None


def gated_feature_map(backbone: Backbone) -> bool:
    """Feature-map arms with their own `attention_maps`: spatial gates (B, H, W) per module.

    An arm built without spatial gates (the cbam arm with se / eca / none) gives none.
    """
    overrides = type(backbone).attention_maps is not Backbone.attention_maps
    return backbone.token_layout is None and overrides


# ---------------------------------------------------------------- how


def gradcam(probe: Probe) -> torch.Tensor:
    """Grad-CAM of `probe.targets` at the feature-map resolution."""
    cam, _ = grad_cam(probe.backbone, probe.images, probe.targets)
    return cam


@torch.no_grad()
def rollout(probe: Probe) -> torch.Tensor:
    """Attention rollout over all blocks, read at the pooled output, on the token grid."""
    layout = probe.backbone.token_layout
    attentions = list(probe.attentions.values())
    token_map = rollout_token_map(attentions, layout.prefix, layout.pooled_by_prefix)
    return token_map.reshape(-1, *layout.grid)


@torch.no_grad()
def last_block_heads(probe: Probe) -> dict[str, torch.Tensor]:
    """Each head of the last block, read like the rollout: {"0": (B, rows, cols), ...}."""
    layout = probe.backbone.token_layout
    last = list(probe.attentions.values())[-1]
    heads = head_token_maps(last, layout.prefix, layout.pooled_by_prefix)
    heads = heads.reshape(*heads.shape[:2], *layout.grid)
    return {str(h): heads[:, h] for h in range(heads.shape[1])}


@torch.no_grad()
def stage_gates(probe: Probe) -> dict[str, torch.Tensor]:
    """The mean spatial gate of each stage ("layer2.1.se.spatial" -> "layer2").

    A stage's gates share its resolution and are averaged so each stage gets one map.
    """
    stages: dict[str, list[torch.Tensor]] = defaultdict(list)
    for name, gate in probe.attentions.items():
        stages[name.split(".")[0]].append(gate.float())
    return {stage: torch.stack(g).mean(dim=0) for stage, g in stages.items()}


# ---------------------------------------------------------------- the table

# Rows in the order maps are computed, returned and plotted. Grad-CAM is what the deletion
# metric scores: the one map every arm has that explains a given class, so scores compare.
METHODS: tuple[MapMethod, ...] = (
    MapMethod("gradcam", "Grad-CAM", every_arm, gradcam, main=True, deletion=True),
    MapMethod("rollout", "rollout", token_model, rollout, main=True),
    MapMethod("head", "head {} (last block)", token_model, last_block_heads, family=True),
    MapMethod("cbam", "CBAM {}", gated_feature_map, stage_gates, family=True, main=True),
)


def list_map_methods() -> list[str]:
    """The names of every map method, in table order."""
    return [m.name for m in METHODS]


def get_map_method(name: str) -> MapMethod:
    """The method called `name`; ConvattnError naming the valid ones for anything else."""
    check_choice("map", name, list_map_methods())
    return next(m for m in METHODS if m.name == name)


def map_methods_for(backbone: Backbone) -> list[MapMethod]:
    """The methods that apply to `backbone`, in table order."""
    return [m for m in METHODS if m.applies_to(backbone)]


def method_of(map_name: str) -> MapMethod | None:
    """The method that makes the map `map_name` (e.g. 'head_2' -> head); None if none does."""
    return next((m for m in METHODS if m.owns(map_name)), None)


def deletion_method() -> MapMethod:
    """The method whose map the deletion metric ranks pixels by."""
    (method,) = (m for m in METHODS if m.deletion)
    return method


def main_map_names(names: list[str]) -> list[str]:
    """The maps of `names` (in `explain_maps` order) a cross-arm comparison shows: each `main`
    method's map, and of a `main` family only its deepest (last) member."""
    shown = []
    for method in METHODS:
        if method.main:
            own = [n for n in names if method.owns(n)]
            shown += own[-1:] if method.family else own
    return shown
