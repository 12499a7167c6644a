"""Mistakes found while running: one clear paragraph, exit 2, never a traceback; finding
the user's error behind a library's wrapper.

The command-line mistakes (options, values, missing or unreadable checkpoints) are the table in
test_cli_mistakes.py; these are the ones that need a run to find."""

from __future__ import annotations

import re
from itertools import islice
from pathlib import Path

import pytest
import torch
from helpers.runs import only_run_dir, read_json, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from convattn.cluster.seeding import seed_everything
from convattn.errors import ConvattnError, error_chain, find_cause, find_user_error
from convattn.train import train


def test_the_error_chain_follows_causes_then_contexts_and_ends() -> None:
    """The one unwrapper: Hydra raises its error `from` ours; torch's writer raises while
    handling an OSError; a chain that loops back on itself still ends."""
    user = ConvattnError("data.img_size=4 must be ...")
    try:
        try:
            raise user
        except ConvattnError as err:
            raise RuntimeError("Error in call to target 'DigitsDataModule'") from err
    except RuntimeError as err:
        hydra_error = err
    disk = OSError(28, "No space left on device")
    try:
        try:
            raise disk
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter")  # noqa: B904
    except RuntimeError as err:
        torch_error = err
    assert list(error_chain(hydra_error)) == [hydra_error, user]
    assert find_user_error(hydra_error) is user and find_user_error(torch_error) is None
    assert find_cause(torch_error, OSError) is disk and find_cause(None, OSError) is None
    loop_a, loop_b = ValueError("a"), ValueError("b")
    loop_a.__cause__, loop_b.__cause__ = loop_b, loop_a
    assert list(islice(error_chain(loop_a), 5)) == [loop_a, loop_b]


def test_img_size_too_small_fails_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=re.escape("data.img_size=4")):
        train(train_cfg(["data.img_size=4"]))


def test_wrong_class_weights_fail_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=r"recipe.class_weights=\[1.0, 2.0\]"):
        train(train_cfg(["recipe.class_weights=[1.0,2.0]"]))


def test_nonfinite_loss_names_step_and_leaves_checkpoint(tmp_path: Path) -> None:
    proc = run_cli(
        "convattn-train", "recipe.optimizer.lr=1e30", "logger=csv", "profile=false",
        "+trainer.limit_val_batches=1", cwd=tmp_path, check=False,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    step = int(re.search(r"The training loss became \S+ at step (\d+)", proc.stderr).group(1))
    run_dir = only_run_dir(tmp_path)
    saved = torch.load(run_dir / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert saved["global_step"] == step  # the state at the failing step, not an older one
    record = read_json(run_dir / "metrics.json")
    assert (record["status"], record["global_step"]) == ("failed", step), record
    assert (run_dir / "train.log").read_text().count("training loss became") == 1


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(),
        st.text(max_size=8), st.none(), st.lists(st.integers(), max_size=2),
    )
)  # fmt: skip
def test_a_seed_is_an_integer_lightning_keeps_or_a_mistake(seed) -> None:
    """Every seed either seeds the run as given or is refused in one paragraph; none is
    silently replaced by a random seed (Lightning's answer to a seed outside numpy's range)."""
    valid = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= 2**32 - 1
    if valid:
        seed_everything(seed)
        assert torch.initial_seed() == seed
    else:
        with pytest.raises(ConvattnError, match=r"is not a seed: it must be an integer"):
            seed_everything(seed)
