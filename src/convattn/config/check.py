"""A composed config, checked before the heavy stack loads: every group against its options.

`check_config(cfg)` is what `ConfigCheck` (the first Hydra callback) runs on a single run's
config and on every job of a grid sweep before anything is written, and what `train()` and
`evaluate()` run again (configs that reach them another way: a DDP rank, a sweeper plugin).
Each group's types and rules live with its options: `convattn.backbones.options` (model),
`convattn.data.options` (data), `convattn.recipe`, `convattn.run.options` (top level,
trainer), `convattn.cluster.options` (seed, compile vs SyncBN) and
`convattn.cluster.slurm_request` (a Slurm launcher's GPU request).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from convattn.backbones.options import options_of
from convattn.cluster.options import check_compile_with_sync_batchnorm
from convattn.cluster.slurm_request import check_slurm_request
from convattn.data.options import DataOptions, check_data
from convattn.recipe import check_recipe_config
from convattn.run.options import check_run, check_trainer
from convattn.utils.typed import typed


def resolved(node: DictConfig) -> dict[str, Any]:
    """`node` as plain data, resolved where it can be: a value that only the job's runtime
    can resolve (`${hydra:runtime.output_dir}`) stays as written, and is checked there."""
    out: dict[str, Any] = {}
    for key in node:
        if node is node._get_root() and key == "hydra":
            continue
        try:
            value = OmegaConf.select(node, str(key), throw_on_missing=False)  # resolved
            if OmegaConf.is_missing(node, key):
                value = "???"  # as written: a required value not given
            elif isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True)
            out[key] = value
        except Exception:
            child = node._get_node(key)
            out[key] = resolved(child) if isinstance(child, DictConfig) else str(child._value())
    return out


def check_config(cfg: DictConfig) -> None:
    """Raise ConvattnError (one paragraph) for the first mistake the config alone shows."""
    values = resolved(cfg)
    check_run(values)
    data: DataOptions | None = check_data(values["data"]) if "data" in values else None
    if "model" in values:
        model = values["model"]
        options = typed(options_of(model.get("arm")), model, "model")
        options.check(data.img_size if data is not None else DataOptions.img_size)
    if "recipe" in values:
        num_classes = type(data).NUM_CLASSES if data is not None else None
        check_recipe_config(values["recipe"], num_classes)
    if "trainer" in values:
        trainer = check_trainer(values["trainer"])
        compile_ = (values.get("recipe") or {}).get("compile")
        check_compile_with_sync_batchnorm(compile_, trainer.sync_batchnorm)
    if "hydra" in cfg:
        check_slurm_request(cfg)
