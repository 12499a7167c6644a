"""convattn: fair ablations of conv-only, attention-only and hybrid vision backbones."""

from convattn import import_guard

__version__ = "0.1.0"

import_guard.install()  # timm without wandb: see convattn/import_guard.py
