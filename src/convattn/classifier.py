"""`ImageClassifier`: one LightningModule that trains any backbone under one recipe."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from timm.optim import param_groups_weight_decay
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from convattn.errors import ConvattnError, instantiate_checked


class NonFiniteLossError(ConvattnError):
    """The training loss became NaN or infinite."""


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


class ImageClassifier(L.LightningModule):
    """Cross-entropy classification of any `Backbone` built from a config dict.

    The backbone is built here from `backbone` (a `_target_` config), so a checkpoint alone is
    enough to rebuild the model: `ImageClassifier.load_from_checkpoint(path)`.
    """

    def __init__(
        self,
        backbone: dict[str, Any],
        in_chans: int,
        num_classes: int,
        img_size: int,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        label_smoothing: float = 0.0,
        class_weights: str | list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = instantiate_checked(
            backbone, in_chans=in_chans, num_classes=num_classes, img_size=img_size
        )
        self.check_input_shape()
        self.register_buffer("class_weight", self.initial_class_weight(), persistent=False)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = eval_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = eval_metrics(num_classes).clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.val_acc_best = MaxMetric()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        hp = self.hparams
        return (hp.in_chans, hp.img_size, hp.img_size)

    def check_input_shape(self) -> None:
        """Fail before training, not at step one, if the backbone cannot take the data's shape."""
        was_training = self.backbone.training
        try:
            with torch.no_grad():
                logits = self.backbone.eval()(torch.zeros(1, *self.input_shape))
        except RuntimeError as err:
            raise ConvattnError(
                f"The {self.hparams.backbone.get('arm', 'given')} backbone cannot take images of "
                f"shape {self.input_shape} (channels, height, width) from the data config: "
                f"{str(err).splitlines()[0]}. Check data.img_size and the model's size settings."
            ) from None
        finally:
            self.backbone.train(was_training)
        if logits.shape != (1, self.hparams.num_classes):
            raise ConvattnError(
                f"The backbone returns logits of shape {tuple(logits.shape[1:])} but the data has "
                f"{self.hparams.num_classes} classes."
            )

    def initial_class_weight(self) -> torch.Tensor | None:
        weights = self.hparams.class_weights
        if weights is None or weights == "balanced":  # "balanced" is filled in by setup()
            return None
        if isinstance(weights, str) or len(weights) != self.hparams.num_classes:
            raise ConvattnError(
                f"recipe.class_weights={weights!r} must be null, 'balanced' or a list of "
                f"{self.hparams.num_classes} numbers (one per class)."
            )
        return torch.as_tensor(list(weights), dtype=torch.float32)

    def setup(self, stage: str) -> None:
        if self.hparams.class_weights == "balanced" and self.class_weight is None:
            counts = self.trainer.datamodule.class_counts().float().clamp(min=1)
            self.class_weight = (counts.sum() / (len(counts) * counts)).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, y, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing
        )

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        if not torch.isfinite(loss):
            self.stop_on_nonfinite(loss, batch_idx)
        self.train_loss(loss.detach())
        self.train_acc(logits.detach(), y)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def stop_on_nonfinite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Raise with the step; OnExceptionCheckpoint then saves the weights it reached."""
        last = getattr(self.trainer.checkpoint_callback, "last_model_path", "")
        saved = f" The last end-of-epoch checkpoint is {last}." if last else ""
        raise NonFiniteLossError(
            f"The training loss became {loss.item()} at step {self.global_step} (epoch "
            f"{self.current_epoch}, batch {batch_idx}); the run stopped and saved the weights it "
            f"reached in checkpoints/on_exception.ckpt of the run dir.{saved} Lower "
            "recipe.optimizer.lr or raise recipe.scheduler.warmup_epochs."
        )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_loss(self.loss(logits, y))
        self.val_metrics.update(logits, y)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        acc = metrics.pop("val/acc")
        self.log("val/acc", acc, prog_bar=True)
        self.log_dict(metrics)
        if not self.trainer.sanity_checking:
            self.val_acc_best(acc)
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.test_loss(self.loss(logits, y))
        self.test_metrics.update(logits, y)
        self.test_confusion.update(logits, y)
        self.log("test/loss", self.test_loss, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        # Kept for the caller (metrics.json, W&B table); a matrix is not a scalar to self.log.
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cfg = dict(self.hparams.optimizer)
        weight_decay = opt_cfg.pop("weight_decay", 0.0)
        # timm's grouping: no weight decay on norms, biases, 1-d params and timm's skip list.
        skip = getattr(self.backbone, "no_weight_decay", set)()  # pos_embed, cls_token
        groups = param_groups_weight_decay(self.backbone, weight_decay, no_weight_decay_list=skip)
        optimizer = instantiate(opt_cfg)(groups)
        sched = self.hparams.scheduler
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(total * sched["warmup_epochs"] / max(self.trainer.max_epochs or 1, 1))
        scheduler = warmup_cosine(
            optimizer, total, warmup, sched["warmup_start_factor"], sched["min_lr"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    start_factor: float,
    min_lr: float,
) -> SequentialLR:
    """Linear warmup over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`."""
    warmup_steps = min(max(warmup_steps, 1), max(total_steps - 1, 1))
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor, 1.0, total_iters=warmup_steps),
            CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1), eta_min=min_lr),
        ],
        milestones=[warmup_steps],
    )
