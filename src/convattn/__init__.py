"""convattn: fair ablations of conv-only, attention-only and hybrid vision backbones."""

__version__ = "0.1.0"
