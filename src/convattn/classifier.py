"""`ImageClassifier`: one LightningModule that trains any backbone under one recipe."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from timm.loss import SoftTargetCrossEntropy
from timm.optim import param_groups_weight_decay
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from convattn.backbones import Backbone, build_backbone
from convattn.errors import ConvattnError
from convattn.metrics import eval_metrics
from convattn.recipe import check_recipe
from convattn.schedule import warmup_cosine


class NonFiniteLossError(ConvattnError):
    """The training loss became NaN or infinite."""


class ImageClassifier(L.LightningModule):
    """Cross-entropy classification of any `Backbone` built from a model config dict.

    The backbone is built here from `backbone` (a `conf/model` config), so a checkpoint's
    hyperparameters are enough to rebuild the model (`convattn.run.load.load_classifier`).
    `class_weights` are the loss's per-class weights (the caller computes "balanced" ones).
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
        class_weights: list[float] | None = None,
        mixup: dict[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool = False,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        # The same types and rules as the config met before the heavy imports.
        check_recipe(optimizer, scheduler, label_smoothing, mixup, class_weights, num_classes)
        self.save_hyperparameters()
        self.backbone: Backbone = build_backbone(
            backbone, in_chans=in_chans, num_classes=num_classes, img_size=img_size
        )
        self.check_input_shape()
        self.register_buffer("class_weight", self.class_weight_tensor(), persistent=False)
        self.mixup = self.build_mixup()
        self.compiled = False
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_metrics = eval_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = eval_metrics(num_classes).clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_per_class = MulticlassAccuracy(num_classes, average="none")
        self.val_acc_best = MaxMetric()
        # Filled in at the end of each test: what metrics.json and W&B report besides scalars.
        self.confusion_matrix: torch.Tensor | None = None
        self.per_class_accuracy: torch.Tensor | None = None

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

    def class_weight_tensor(self) -> torch.Tensor | None:
        weights = self.hparams.class_weights
        if weights is None:
            return None
        return torch.as_tensor(list(weights), dtype=torch.float32)

    def build_mixup(self) -> Any:
        """timm's Mixup/CutMix on the batch, or None when both alphas are 0."""
        cfg = dict(self.hparams.mixup or {})
        if not (cfg.get("mixup_alpha", 0.0) > 0 or cfg.get("cutmix_alpha", 0.0) > 0):
            return None
        from timm.data import Mixup  # timm.data is big: imported only when mixing

        return Mixup(
            **cfg,
            label_smoothing=self.hparams.label_smoothing,
            num_classes=self.hparams.num_classes,
        )

    def configure_model(self) -> None:
        # Lightning calls this for fit and again for test: compile once.
        if self.hparams.compile and not self.compiled:
            self.backbone.compile()  # in place: state_dict keys stay as they are
            self.compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, y, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing
        )

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        # timm's Mixup pairs the batch with its reverse: it needs an even batch size.
        if self.mixup is not None and len(x) % 2 == 0:
            x, soft_targets = self.mixup(x, y)
            logits = self(x)
            loss = SoftTargetCrossEntropy()(logits, soft_targets)
        else:
            logits = self(x)
            loss = self.loss(logits, y)
        if self.nonfinite_on_any_rank(loss):
            self.stop_on_nonfinite(loss, batch_idx)
        self.train_loss(loss.detach())
        self.train_acc(logits.detach(), y)
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def nonfinite_on_any_rank(self, loss: torch.Tensor) -> bool:
        """Whether the loss is NaN or infinite on this rank or any other. Decided by all ranks
        together: a rank that stopped alone would leave the others waiting in the gradient
        all-reduce until the collective times out (30 min), instead of stopping now."""
        bad = not bool(torch.isfinite(loss.detach()))
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        return bad

    def stop_on_nonfinite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Raise with the step; OnExceptionCheckpoint then saves the weights it reached."""
        callback = self.trainer.checkpoint_callback
        last = callback.last_model_path if callback is not None else ""
        saved = f" The last end-of-epoch checkpoint is {last}." if last else ""
        value = loss.item()
        where = f" on rank {self.global_rank}" if self.trainer.world_size > 1 else ""
        became = f"{value}{where}" if not math.isfinite(value) else "non-finite on another rank"
        raise NonFiniteLossError(
            f"The training loss became {became} at step {self.global_step} (epoch "
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
        self.test_per_class.update(logits, y)
        self.log("test/loss", self.test_loss, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        # Kept for the caller (metrics.json, W&B table); a matrix is not a scalar to self.log.
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        self.per_class_accuracy = self.test_per_class.compute().cpu()
        self.test_per_class.reset()
        # The worst class is the number an imbalance study watches.
        self.log("test/acc_worst_class", self.per_class_accuracy.min())

    def configure_optimizers(self) -> dict[str, Any]:
        opt_cfg = dict(self.hparams.optimizer)
        weight_decay = opt_cfg.pop("weight_decay", 0.0)
        # timm's grouping: no weight decay on norms, biases, 1-d params and timm's skip list.
        skip = self.backbone.no_weight_decay()  # pos_embed, cls_token
        groups = param_groups_weight_decay(self.backbone, weight_decay, no_weight_decay_list=skip)
        optimizer = instantiate(opt_cfg)(groups)
        sched = self.hparams.scheduler
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        # Warmup in epochs of optimizer steps, also for a max_steps budget (max_epochs=-1), where
        # Lightning estimates the total without building the train loader: build it here.
        if not math.isfinite(self.trainer.num_training_batches):
            self.trainer.fit_loop.setup_data()
        steps_per_epoch = math.ceil(
            self.trainer.num_training_batches / self.trainer.accumulate_grad_batches
        )
        # At most a quarter of the run: a short run (a quick check, a small budget) still decays.
        warmup = min(int(steps_per_epoch * sched["warmup_epochs"]), total // 4)
        scheduler = warmup_cosine(
            optimizer, total, warmup, sched["warmup_start_factor"], sched["min_lr"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def build_classifier(
    model: dict[str, Any], recipe: dict[str, Any], datamodule: Any
) -> ImageClassifier:
    """The classifier for a `conf/model` config under a `conf/recipe`, shaped for the data;
    fails here on a mismatch. `class_weights: balanced` becomes inverse class frequencies."""
    recipe = dict(recipe)
    if recipe.get("class_weights") == "balanced":
        counts = datamodule.class_counts().double().clamp(min=1)
        recipe["class_weights"] = (counts.sum() / (len(counts) * counts)).tolist()
    return ImageClassifier(
        backbone=model,
        in_chans=datamodule.in_chans,
        num_classes=datamodule.num_classes,
        img_size=datamodule.img_size,
        class_names=datamodule.classes,
        **recipe,
    )
