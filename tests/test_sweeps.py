"""Multiruns end to end: separate W&B runs per job, the report, failures, and Optuna."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from helpers.runs import only_sweep_dir, read_json, run_cli, wandb_records, wandb_summary

from convattn.explain import deletion_auc_for_run

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "print_config=false",
]


def wandb_run_record(run_dir: Path) -> dict:
    """The `run` record (name, group, job type, tags) from the job's .wandb file."""
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    return next(r["run"] for r in wandb_records(offline) if r["type"] == "run")


@pytest.mark.slow
def test_multirun_report_and_wandb_grouping(tmp_path: Path) -> None:
    run_cli("convattn-train", "-m", "model=cnn,vit", "seed=0,1", *SHORT, cwd=tmp_path)
    sweep = only_sweep_dir(tmp_path)
    jobs = [read_json(p) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"completed"}

    # W&B: four separate, finished offline runs; one group (the sweep); job_type = the arm.
    runs = [wandb_run_record(Path(job["output_dir"])) for job in jobs]
    assert len({r["run_id"] for r in runs}) == 4
    assert {r["run_group"] for r in runs} == {f"train-{sweep.name}"}
    assert [r["job_type"] for r in runs] == [j["arm"] for j in jobs]
    assert all(
        {j["arm"], "tiny", "digits"} <= set(r["tags"]) for r, j in zip(runs, jobs, strict=True)
    )
    for job in jobs:
        summary = wandb_summary(Path(job["output_dir"]))
        assert summary["state"] == "finished"
        assert summary["config"]["model.arm"] == job["arm"]  # the flattened config

    out = tmp_path / "report"
    run_cli(
        "convattn-report", str(sweep), "-o", str(out), "--deletion", "16", "--wandb", cwd=tmp_path
    )
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["arm"] for r in rows] == ["cnn", "vit"]
    for row in rows:  # each arm's deletion AUC: the mean of its jobs', recomputed here
        aucs = [deletion_auc_for_run(j["output_dir"], num_images=16) for j in jobs
                if j["arm"] == row["arm"]]  # fmt: skip
        assert float(row["deletion_auc"]) == pytest.approx(statistics.fmean(aucs), abs=1e-6)
    speed = {r["arm"]: float(r["train_images_per_s"]) for r in rows}
    assert float(rows[1]["time_x_cnn"]) == pytest.approx(speed["cnn"] / speed["vit"])
    for row in rows:
        accs = [j["metrics"]["test/acc"] for j in jobs if j["arm"] == row["arm"]]
        assert int(row["n"]) == 2
        assert float(row["acc_mean"]) == pytest.approx(statistics.fmean(accs), abs=1e-9)
        assert float(row["acc_std"]) == pytest.approx(statistics.stdev(accs), abs=1e-9)
    image = matplotlib.image.imread(out / "report.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    report = (out / "report.md").read_text()
    assert "| vit | tiny | digits | 2 |" in report and "All jobs completed." in report
    assert "Swept besides the seed" not in report  # only the arm and the seed vary

    # The report as one W&B run, in the jobs' group (read back from their own W&B runs).
    report_run = wandb_run_record(out)
    assert (report_run["job_type"], report_run["run_group"]) == ("report", f"train-{sweep.name}")
    summary = wandb_summary(out)["summary"]
    assert summary["per_arm"]["_type"] == "table-file"
    assert summary["figures/cost"]["_type"] == "image-file"
    assert summary["acc_mean/vit-tiny-digits"] == pytest.approx(float(rows[1]["acc_mean"]))


@pytest.mark.slow
def test_failing_job_is_reported_and_the_sweep_goes_on(tmp_path: Path) -> None:
    run_cli(
        "convattn-train",
        "-m",
        "recipe.optimizer.lr=1e-3,1e30,2e-3",
        "logger=wandb",
        "profile=false",
        *SHORT,
        cwd=tmp_path,
    )
    sweep = only_sweep_dir(tmp_path)
    statuses = [read_json(sweep / str(i) / "metrics.json")["status"] for i in range(3)]
    assert statuses == ["completed", "failed", "completed"]
    # W&B: the failed job's run is closed as failed (exit code 1), and the next job gets a
    # fresh run of its own rather than logging into the failed one.
    runs = [wandb_run_record(sweep / str(i)) for i in range(3)]
    assert len({r["run_id"] for r in runs}) == 3
    states = [wandb_summary(sweep / str(i))["state"] for i in range(3)]
    assert states == ["finished", "failed", "finished"]
    out = tmp_path / "report"
    run_cli("convattn-report", str(sweep), "-o", str(out), cwd=tmp_path)
    report = (out / "report.md").read_text()
    assert "2 of 3 jobs completed." in report
    assert "**failed**" in report and "training loss became" in report
    # the two completed learning rates make a curve (the failed one is listed, not drawn)
    assert "## Test accuracy against `recipe.optimizer.lr`" in report
    assert (out / "report_recipe.optimizer.lr.png").is_file()
    points = list(csv.DictReader((out / "report_recipe.optimizer.lr.csv").open()))
    assert [float(p["recipe.optimizer.lr"]) for p in points] == [1e-3, 2e-3]
    accs = [read_json(sweep / str(i) / "metrics.json")["metrics"]["test/acc"] for i in (0, 2)]
    assert [float(p["acc_mean"]) for p in points] == pytest.approx(accs, abs=1e-9)


@pytest.mark.slow
def test_optuna_search_records_best_trial(tmp_path: Path) -> None:
    run_cli(
        "convattn-train",
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=3",
        "logger=csv",
        "profile=false",
        *SHORT,
        cwd=tmp_path,
    )
    sweep = only_sweep_dir(tmp_path)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [read_json(p)["metrics"]["val/acc_best"] for p in sweep.glob("*/metrics.json")]
    assert len(values) == 3
    assert best["best_value"] == pytest.approx(max(values), abs=1e-6)
    assert set(best["best_params"]) == {
        "recipe.optimizer.lr",
        "recipe.optimizer.weight_decay",
        "model.drop_path_rate",
    }
