"""convattn: fair ablations of conv-only, attention-only and hybrid vision backbones."""

import sys

__version__ = "0.1.0"

# timm.utils.summary imports wandb when it is installed (about 1 s of start-up) only for timm's own
# train.py summaries, which convattn never calls. Import timm first with wandb hidden, so a run
# pays for wandb only when it logs to W&B (convattn.tracking imports it then).
if "timm" not in sys.modules and "wandb" not in sys.modules:
    sys.modules["wandb"] = None  # type: ignore[assignment]  # makes `import wandb` fail fast
    try:
        import timm  # noqa: F401
    finally:
        del sys.modules["wandb"]
