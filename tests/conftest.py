"""Shared fixtures: composed configs (lightning-hydra-template style). Helpers live in helpers/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Under pytest-xdist each of the two workers gets one core: one torch thread here, and (through
# the variable) in every console command and DDP rank the tests start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
from helpers.runs import compose_config
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for modules of many small tensor ops: faster, and leaves a core free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def train_cfg(tmp_path: Path) -> Iterator:
    """Factory: `train_cfg(["model=vit", ...])` -> a composed train config in tmp_path."""

    def make(overrides: list[str] | None = None) -> DictConfig:
        return compose_config(
            "train", ["logger=csv", "print_config=false", *(overrides or [])], tmp_path
        )

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session", autouse=True)
def decode_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """The suite's own decode cache (inherited by CLI subprocesses), not the user's."""
    folder = tmp_path_factory.mktemp("decode_cache")
    before = os.environ.get("CONVATTN_CACHE_DIR")
    os.environ["CONVATTN_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("CONVATTN_CACHE_DIR", None)
    else:
        os.environ["CONVATTN_CACHE_DIR"] = before
