"""Decide, without touching the network, whether W&B can go online."""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        hosts = netrc.netrc(path).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def wandb_should_be_offline() -> bool:
    """Offline unless the user asked for a mode or has credentials: no prompt, no hang."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True
    if mode == "online":
        return False
    return not has_wandb_credentials()
