"""`python -m convattn ...` is `convattn-train ...` (for environments without the scripts)."""

from convattn.cli import train

train()
