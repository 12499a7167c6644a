"""See what each arm attends to: Grad-CAM, attention rollout, CBAM gates, deletion metric.

from convattn.explain import explain_maps
maps = explain_maps(model.backbone, images)  # {"gradcam": (B, H, W), "rollout": ..., ...}
"""

from convattn.explain.deletion import deletion_auc_for_run, deletion_curve, deletion_for_run
from convattn.explain.gradcam import grad_cam
from convattn.explain.maps import explain_maps, main_map_names
from convattn.explain.rollout import attention_rollout

__all__ = [
    "attention_rollout",
    "deletion_auc_for_run",
    "deletion_curve",
    "deletion_for_run",
    "explain_maps",
    "grad_cam",
    "main_map_names",
]
