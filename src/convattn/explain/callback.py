"""`AttentionMapLogger`: explain overlays of a few fixed images, logged to W&B while training."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from convattn.backbones.capture import eval_mode
from convattn.explain.inputs import display_images
from convattn.explain.maps import explain_maps
from convattn.explain.plot import class_name, explanation_figure, to_array
from convattn.run.lifecycle import in_multirun


class AttentionMapLogger(L.Callback):
    """Log the input and an overlay of each of the arm's maps (`explain_maps`) as `wandb.Image`s.

    The first `num_images` validation images are picked once (as the model sees them, after
    the datamodule's device transform) and logged under `<key>/val` every `every_n_epochs`
    epochs; at test time the first `num_images` test images go under `<key>/test`. A no-op
    without a WandbLogger, and on ranks other than 0. Maps are computed in eval mode with the
    flags restored and without writing parameter gradients (see `explain_maps`).
    """

    def __init__(
        self,
        num_images: int = 8,
        every_n_epochs: int = 5,
        key: str = "attention_maps",
        in_sweeps: bool = False,
    ) -> None:
        super().__init__()
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError("num_images and every_n_epochs must be at least 1")
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.key = key
        # Off in multiruns unless asked: a dozen jobs each spending seconds per log adds up.
        self.enabled = in_sweeps or not in_multirun()
        self.images: dict[str, list[torch.Tensor]] = {"val": [], "test": []}
        self.labels: dict[str, list[torch.Tensor]] = {"val": [], "test": []}

    @staticmethod
    def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    def active(self, trainer: L.Trainer) -> bool:
        return self.enabled and trainer.is_global_zero and self.wandb_logger(trainer) is not None

    def keep(self, split: str, batch: Any, dataloader_idx: int) -> None:
        """Keep the first images of dataloader 0 of `split` (on the CPU, outside inference mode)."""
        have = sum(len(y) for y in self.labels[split])
        if dataloader_idx != 0 or have >= self.num_images:
            return
        images, labels = batch[0], batch[1]
        with torch.inference_mode(False):
            self.images[split].append(images[: self.num_images - have].detach().cpu().clone())
            self.labels[split].append(labels[: self.num_images - have].detach().cpu().clone())

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.active(trainer):
            self.keep("val", batch, dataloader_idx)

    def on_test_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.active(trainer):
            self.keep("test", batch, dataloader_idx)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if self.active(trainer):
            self.log_maps(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active(trainer):
            self.log_maps(trainer, pl_module, "test")

    def log_maps(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if not self.labels[split]:
            return
        images = torch.cat(self.images[split]).to(pl_module.device)
        labels = torch.cat(self.labels[split])
        backbone = pl_module.backbone
        maps = explain_maps(backbone, images)  # class-specific maps explain the predicted class
        with torch.inference_mode(False), torch.no_grad(), eval_mode(backbone):
            preds = backbone(images.clone()).argmax(dim=1).cpu()
        shown = display_images(images)
        classes = pl_module.hparams.get("class_names")
        arrays, captions = [], []
        for i in range(len(labels)):
            true, pred = class_name(int(labels[i]), classes), class_name(int(preds[i]), classes)
            fig = explanation_figure(
                shown[i],
                {n: m[i].numpy() for n, m in maps.items()},
                true,
                pred,
                label=f"epoch {trainer.current_epoch}" if split == "val" else "test",
            )
            arrays.append(to_array(fig))
            captions.append(f"true {true}, predicted {pred}")
        self.wandb_logger(trainer).log_image(
            key=f"{self.key}/{split}", images=arrays, caption=captions, step=trainer.global_step
        )
