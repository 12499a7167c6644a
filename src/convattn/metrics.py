"""The evaluation metrics every arm is scored with (torchmetrics)."""

from __future__ import annotations

from typing import Any

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)


def eval_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (top-1, top-5 when there are more than 5 classes), macro F1 and ECE."""
    metrics: dict[str, Any] = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        "ece": MulticlassCalibrationError(num_classes, n_bins=15, norm="l1"),
    }
    if num_classes > 5:
        metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics)
