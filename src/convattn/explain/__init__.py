"""See what each arm attends to: Grad-CAM, attention rollout, CBAM gates, deletion metric.

from convattn.explain import explain_maps
maps = explain_maps(model.backbone, images)  # {map name: (B, H, W)}, see list_map_methods()
"""

from convattn.explain.deletion import deletion_auc_for_run, deletion_curve, deletion_for_run
from convattn.explain.gradcam import grad_cam
from convattn.explain.maps import explain_maps
from convattn.explain.methods import (
    MapMethod,
    get_map_method,
    list_map_methods,
    main_map_names,
    map_methods_for,
)
from convattn.explain.rollout import attention_rollout

__all__ = [
    "MapMethod",
    "attention_rollout",
    "deletion_auc_for_run",
    "deletion_curve",
    "deletion_for_run",
    "explain_maps",
    "get_map_method",
    "grad_cam",
    "list_map_methods",
    "main_map_names",
    "map_methods_for",
]
