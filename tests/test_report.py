"""`convattn-report` on made-up sweeps: statistics checked against scipy and hand computation,
robustness to bad records, curves for swept keys, and the W&B report run."""

from __future__ import annotations

import copy
import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import scipy.stats
import yaml
from helpers.runs import run_cli, wandb_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convattn.report import cli
from convattn.report.collect import Job, collect
from convattn.report.curves import curve_points, lr_summaries, span_decade
from convattn.report.plots import write_curve_plot
from convattn.report.stats import paired_differences
from convattn.report.swept import swept_keys
from convattn.run.record import (
    RecordError,
    RunRecord,
    completed_record_exists,
    read_attempts,
)

LR = "recipe.optimizer.lr"
FRACTION = "data.train_fraction"

BASE_CONFIG: dict[str, Any] = {
    "task_name": "train",
    "seed": 0,
    "data": {"_target_": "convattn.data.digits.DigitsDataModule", "train_fraction": 1.0},
    "model": {"arm": "cnn", "size": "tiny", "drop_path_rate": 0.0, "patch_size": None},
    "recipe": {
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.002, "weight_decay": 0.05},
        "scheduler": {"warmup_epochs": 3.0, "min_lr": 1.0e-5},
    },
    "trainer": {"max_epochs": 15, "devices": "${from_launcher:tasks_per_node,1}"},
    "logger": {"wandb": {"project": "convattn", "group": None}},
}


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def write_job(
    sweep: Path,
    num: int,
    arm: str = "cnn",
    seed: int = 0,
    acc: float = 0.9,
    status: str = "completed",
    cfg: dict[str, Any] | None = None,
    swept: tuple[str, ...] | None = None,
    record: str | None = None,
    **fields: Any,
) -> Path:
    """A Hydra job dir <sweep>/<num> with config.yaml, overrides.yaml and (unless `status` is
    unfinished) a metrics.json; `record` replaces the metrics.json text, `swept` names the
    keys of `cfg` that go into overrides.yaml (default: all of them)."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = copy.deepcopy(BASE_CONFIG)
    config["model"]["arm"], config["seed"] = arm, seed
    for key, value in (cfg or {}).items():
        set_dotted(config, key, value)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    keys = (cfg or {}).keys() if swept is None else swept
    overrides = [f"model={arm}", f"seed={seed}", *(f"{k}={(cfg or {})[k]}" for k in keys)]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if record is not None:
        (job / "metrics.json").write_text(record)
    elif status != "unfinished":
        metrics = {"test/acc": acc, "test/f1_macro": acc - 0.01, "test/ece": 0.02}
        values = {
            "status": status,
            "task": "train",
            "arm": arm,
            "size": "tiny",
            "dataset": "digits",
            "seed": seed,
            "params": 700_000,
            "profile": {"gflops": 0.07, "train_images_per_s": 400.0, "latency_ms_b1": 5.0},
            "wall_time_s": 100.0,
            "metrics": metrics,
        } | fields
        RunRecord.from_dict(values).write(job)
    return job


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def report(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return cli.main([str(tmp_path / "sweep"), "-o", str(out), *args]), out


def section(text: str, heading: str) -> str:
    """The markdown from `heading` to the next `## ` heading."""
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def md_row(text: str, start: str) -> str:
    """The one markdown table row that starts with `start`."""
    (row,) = [line for line in text.splitlines() if line.startswith(start)]
    return row


def t_interval(values: list[float]) -> tuple[float, float]:
    """scipy's own 95 % t-interval of the mean, independent of the report's code."""
    return scipy.stats.t.interval(
        0.95, len(values) - 1, loc=statistics.fmean(values), scale=scipy.stats.sem(values)
    )


# --- per arm, pairing, failures -------------------------------------------------------------


ACC = {"cnn": [0.97, 0.95, 0.96], "vit": [0.91, 0.94, 0.90]}


def test_per_arm_mean_std_and_compute_overhead(tmp_path: Path) -> None:
    sweep, n = tmp_path / "sweep", 0
    for arm, accs in ACC.items():
        speed = {"cnn": 400.0, "vit": 100.0}[arm]
        for seed, acc in enumerate(accs):
            profile = {"gflops": 0.07, "train_images_per_s": speed, "latency_ms_b1": 5.0}
            write_job(sweep, n, arm, seed, acc, profile=profile)
            n += 1
    rc, out = report(tmp_path)
    assert rc == 0
    rows = {r["arm"]: r for r in read_csv(out / "report.csv")}
    assert list(rows) == ["cnn", "vit"]
    for arm, accs in ACC.items():
        assert int(rows[arm]["n"]) == 3
        assert float(rows[arm]["acc_mean"]) == pytest.approx(statistics.fmean(accs), abs=1e-12)
        assert float(rows[arm]["acc_std"]) == pytest.approx(statistics.stdev(accs), abs=1e-12)
    assert float(rows["vit"]["time_x_cnn"]) == pytest.approx(4.0)
    assert float(rows["cnn"]["time_x_cnn"]) == pytest.approx(1.0)
    text = (out / "report.md").read_text()
    table = section(text, "## Per arm")
    assert "time × cnn" in md_row(table, "| arm |")
    assert "| 400 | 1.00 |" in md_row(table, "| cnn |")
    assert "| 100 | 4.00 |" in md_row(table, "| vit |")
    assert "| 91.67 ± 2.08 |" in md_row(table, "| vit |")  # 100 * mean, 100 * std
    assert "All jobs completed." in text and "Skipped" not in text


def test_rows_carry_their_budget_and_mixed_budgets_are_said(tmp_path: Path) -> None:
    """Steps and training images are columns; a table mixing budgets says so, row by row."""
    sweep = tmp_path / "sweep"
    budgets = {"cnn": [(4000, 54000)] * 2, "vit": [(400, 5400)] * 2, "hybrid": [(4000, 54000)] * 2}
    budgets["hybrid"][1] = (3500, 54000)  # one seed stopped early
    n = 0
    for arm, runs in budgets.items():
        for seed, (steps, images) in enumerate(runs):
            write_job(sweep, n, arm, seed, 0.9, global_step=steps, train_images=images)
            n += 1
    rc, out = report(tmp_path)
    assert rc == 0
    rows = {r["arm"]: r for r in read_csv(out / "report.csv")}
    assert (
        float(rows["cnn"]["global_steps"]) == 4000 and float(rows["cnn"]["train_images"]) == 54000
    )
    assert float(rows["vit"]["global_steps"]) == 400 and float(rows["vit"]["train_images"]) == 5400
    text = (out / "report.md").read_text()
    assert md_row(section(text, "## Per arm"), "| cnn | tiny | digits | 2 | 4,000 | 54,000 |")
    notes = section(text, "## Notes")
    assert "the hybrid row averages seeds that ran 3,500–4,000 optimizer steps" in notes
    assert "cnn 4,000 steps on 54,000 images, hybrid 3,750 steps on 54,000 images" in notes
    assert "vit 400 steps on 5,400 images" in notes and "not comparable" in notes


def test_one_budget_needs_no_note(tmp_path: Path) -> None:
    for n, arm in enumerate(["cnn", "vit"]):
        write_job(tmp_path / "sweep", n, arm, 0, 0.9, global_step=4000, train_images=54000)
    rc, out = report(tmp_path)
    assert rc == 0 and "Budget" not in (out / "report.md").read_text()


def test_pairs_only_shared_seeds_with_a_scipy_interval(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    vit = {0: 0.70, 1: 0.91, 2: 0.88}
    cnn = {1: 0.95, 2: 0.96, 3: 0.50}
    for n, (arm, seed, acc) in enumerate(
        [*(("vit", s, a) for s, a in vit.items()), *(("cnn", s, a) for s, a in cnn.items())]
    ):
        write_job(sweep, n, arm, seed, acc)
    (diff,) = paired_differences(collect([sweep]))
    assert (diff.arm, diff.n_pairs) == ("vit", 2)
    expected = scipy.stats.ttest_rel([vit[1], vit[2]], [cnn[1], cnn[2]])
    low, high = expected.confidence_interval(0.95)
    assert diff.mean == pytest.approx((vit[1] - cnn[1] + vit[2] - cnn[2]) / 2, abs=1e-12)
    assert (diff.ci_low, diff.ci_high) == (pytest.approx(low), pytest.approx(high))
    rc, out = report(tmp_path)
    assert rc == 0
    pairs = section((out / "report.md").read_text(), "## Against the conv-only baseline")
    assert md_row(pairs, "| vit |") == (
        f"| vit | tiny | digits | 2 | {100 * diff.mean:+.2f} "
        f"| [{100 * low:+.2f}, {100 * high:+.2f}] |"
    )


def test_one_shared_seed_has_no_interval(tmp_path: Path) -> None:
    write_job(tmp_path / "sweep", 0, "cnn", 0, 0.9)
    write_job(tmp_path / "sweep", 1, "vit", 0, 0.8)
    rc, out = report(tmp_path)
    assert rc == 0
    assert md_row((out / "report.md").read_text(), "| vit | tiny | digits | 1 | -10.00 |")
    assert "n/a (one seed)" in (out / "report.md").read_text()


def test_failed_and_unfinished_jobs_are_listed_not_averaged(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "cnn", 0, 0.90)
    write_job(sweep, 1, "cnn", 1, 0.94)
    write_job(sweep, 2, "cnn", 2, 0.0, status="failed", error="training loss became nan")
    write_job(sweep, 3, "vit", 0, 0.0, status="interrupted", error="SIGTERM")
    write_job(sweep, 4, "vit", 1, status="unfinished")
    write_job(sweep, 5, "vit", 2, 0.85)
    rc, out = report(tmp_path)
    assert rc == 0
    rows = {r["arm"]: r for r in read_csv(out / "report.csv")}
    assert (rows["cnn"]["n"], float(rows["cnn"]["acc_mean"])) == ("2", pytest.approx(0.92))
    assert (rows["vit"]["n"], float(rows["vit"]["acc_mean"])) == ("1", pytest.approx(0.85))
    text = (out / "report.md").read_text()
    assert "3 of 6 jobs completed." in text
    problems = text.split("## Failed or unfinished jobs")[1]
    assert f"`{sweep / '2'}`: **failed** (arm cnn, seed 2) — training loss became nan" in problems
    assert f"`{sweep / '3'}`: **interrupted** (arm vit, seed 0) — SIGTERM" in problems
    assert f"`{sweep / '4'}`: **unfinished** (arm vit, seed 1)" in problems


# --- bad records ----------------------------------------------------------------------------


def test_bad_records_are_skipped_and_named_while_the_rest_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "cnn", 0, 0.90)
    write_job(sweep, 1, "cnn", 1, 0.92)
    good = json.dumps(RunRecord(status="completed", metrics={"test/acc": 0.9}).to_dict())
    write_job(sweep, 2, "vit", 0, record=good[: len(good) // 2])  # killed while writing
    write_job(sweep, 3, "vit", 1, record=json.dumps({"status": "done", "metrics": {}}))
    write_job(sweep, 4, "vit", 2, record="[1, 2, 3]")
    write_job(sweep, 5, "vit", 3, metrics={"val/acc": 0.9}, split="val")  # convattn-eval split=val
    write_job(sweep, 6, "vit", 4, metrics={"val/acc_best": 0.9})  # test=false
    bad_config = write_job(sweep, 7, "vit", 5, 0.8)
    (bad_config / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    other = {"status": "completed", "profile": {"gflops": "fast"}, "metrics": {"test/acc": 0.9}}
    write_job(sweep, 8, "vit", 6, record=json.dumps(other))  # a record of another program
    foreign = {"status": "completed", "seed": "seven", "metrics": {"test/acc": 0.9}}
    write_job(sweep, 9, "vit", 7, record=json.dumps(foreign))
    rc, out = report(tmp_path)
    assert rc == 0
    assert [r["arm"] for r in read_csv(out / "report.csv")] == ["cnn"]
    text = (out / "report.md").read_text()
    assert "2 of 10 jobs completed. 8 skipped" in text
    skipped = text.split("## Skipped records")[1].strip().splitlines()
    assert len(skipped) == 8
    expected = {
        2: "metrics.json`: JSONDecodeError:",
        3: "metrics.json`: status='done' is not valid: it must be one of completed, failed, inter",
        4: "metrics.json`: expected a JSON object, found list",
        5: "metrics.json`: completed but has no test/acc (an evaluation of split=val)",
        6: "metrics.json`: completed but has no test/acc (test=false?)",
        7: "config.yaml`: ParserError: expected ',' or ']', but got '<stream end>' (line 2",
        8: "metrics.json`: profile['gflops']='fast' is not valid: it must be a number",
        9: "metrics.json`: seed='seven' is not valid: it must be a 64-bit integer",
    }
    for num, reason in expected.items():
        assert any(
            line.startswith(f"- `{sweep / str(num)}/") and reason in line for line in skipped
        )
    err = capsys.readouterr().err
    assert err.count("convattn-report: skipped") == 8 and str(sweep / "2" / "metrics.json") in err


def test_no_usable_job_exits_2_with_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, record='{"status": "compl')
    write_job(sweep, 1, status="failed", error="out of memory")
    rc, out = report(tmp_path)
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err
    paragraph, *listed = err.strip().splitlines()
    assert paragraph.startswith("convattn-report: none of the 2 jobs under")
    assert "(1 failed, 1 skipped)" in paragraph
    assert any(str(sweep / "0" / "metrics.json") in line for line in listed)
    assert any("out of memory" in line for line in listed)


def test_no_jobs_or_no_directory_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "sweep").mkdir()
    assert report(tmp_path)[0] == 2
    assert "no jobs found" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_configs_are_read_as_data_only(tmp_path: Path) -> None:
    """A job's config never runs code: YAML tags are refused and the data module is named
    from a table, never imported."""
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "cnn", 0, 0.9)
    marker = tmp_path / "pwned"
    evil = write_job(sweep, 1, "vit", 0, 0.9)
    (evil / ".hydra" / "config.yaml").write_text(
        f"seed: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    unknown = write_job(sweep, 2, "vit", 1, status="unfinished")
    config = yaml.safe_load((unknown / ".hydra" / "config.yaml").read_text())
    config["data"]["_target_"] = "evil_pkg.data.EvilDataModule"
    (unknown / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = {job.path.name: job for job in collect([sweep])}
    assert not marker.exists() and "evil_pkg" not in sys.modules
    assert jobs["1"].status == "skipped" and "ConstructorError" in str(jobs["1"].error)
    assert (jobs["2"].status, jobs["2"].dataset) == ("unfinished", "evil")


# --- weird numbers and types in records ---------------------------------------------------

WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -1, 2**63, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]),
    st.text(max_size=5),
    st.sampled_from(["inf", "-inf", "NaN", "completed", "cnn"]),
    st.lists(st.one_of(st.integers(-2, 3), st.floats(), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.floats()), max_size=2),
)
RECORD_PLACES = [
    "status", "arm", "size", "dataset", "seed", "params", "wall_time_s", "train_fraction",
    "train_images", "epochs", "global_step", "img_size", "num_classes", "model", "profile",
    "metrics", "confusion_matrix", "per_class_acc", "error", "task",
    "metrics.test/acc", "metrics.test/f1_macro", "metrics.test/ece", "metrics.val/loss",
    "profile.gflops", "profile.train_images_per_s", "profile.latency_ms_b1",
]  # fmt: skip


def good_sweep(sweep: Path) -> None:
    """Two good cnn jobs and a good vit job (its record is the one the tests change)."""
    write_job(sweep, 0, "cnn", 0, 0.90)
    write_job(sweep, 1, "cnn", 1, 0.92)
    write_job(sweep, 2, "vit", 0, 0.80)


def corrupt(job: Path, changes: list[tuple[str, Any]]) -> None:
    """Rewrite the job's metrics.json with `changes` (dotted keys), as JSON (NaN, Infinity and
    all: Python's json writes and reads them)."""
    record = json.loads((job / "metrics.json").read_text())
    for where, value in changes:
        key, _, leaf = where.partition(".")
        if leaf and isinstance(record.get(key), dict):
            record[key][leaf] = value
        elif not leaf:
            record[key] = value
    (job / "metrics.json").write_text(json.dumps(record))


@pytest.mark.slow
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(changes=st.lists(st.tuples(st.sampled_from(RECORD_PLACES), WEIRD), min_size=1, max_size=3))
def test_weird_numbers_and_types_in_a_record_never_crash_the_report(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, Any]]
) -> None:
    tmp = tmp_path_factory.mktemp("weird")
    sweep = tmp / "sweep"
    good_sweep(sweep)
    corrupt(sweep / "2", changes)
    rc = cli.main([str(sweep), "-o", str(tmp / "out")])
    assert rc == 0  # the good jobs are enough for a report
    rows = read_csv(tmp / "out" / "report.csv")
    cnn = [r for r in rows if r["arm"] == "cnn" and r["dataset"] == "digits"]
    assert cnn and float(cnn[0]["acc_mean"]) == pytest.approx(0.91, abs=0.06)
    text = (tmp / "out" / "report.md").read_text()
    (weird,) = [j for j in collect([sweep]) if j.path.name == "2"]
    if weird.status == "skipped":  # listed with the file and why, on one line
        assert f"- `{sweep / '2' / 'metrics.json'}`: " in section(text, "## Skipped records")
    elif weird.usable:  # kept: its accuracy is a fraction, so its row says so
        assert 0 <= weird.metrics["test/acc"] <= 1
    else:
        assert f"`{sweep / '2'}`: **{weird.status}**" in text


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ([("metrics.test/acc", math.nan)], "completed but test/acc=nan is not a fraction"),
        ([("metrics.test/acc", 1e308)], "completed but test/acc=1e+308 is not a fraction"),
        ([("metrics.test/ece", math.inf)], "test/ece=inf is not a fraction in [0, 1], nor NaN"),
        ([("params", 10**400)], "params=an integer of 1329 bits is not valid: it must be an "
                                "integer in [0, 2**63), or null"),
        ([("params", -5)], "params=-5 is not valid"),
        ([("seed", 1.5)], "seed=1.5 is not valid: it must be a 64-bit integer, or null"),
        ([("wall_time_s", "slow")], "wall_time_s='slow' is not valid"),
        ([("profile.gflops", True)], "profile['gflops']=True is not valid: it must be a number"),
        ([("metrics.test/acc", "0.9")], "metrics['test/acc']='0.9' is not valid"),
        ([("confusion_matrix", [[1, -2]])], "confusion_matrix[0][1]=-2 is not valid"),
        ([("per_class_acc", [0.5, 7])], "per_class_acc[1]=7 is not valid"),
        ([("train_fraction", 0)], "train_fraction=0 is not valid: it must be a number in (0, 1]"),
    ],
)  # fmt: skip
def test_a_weird_record_is_listed_with_the_key_and_the_rest_reported(
    tmp_path: Path, changes: list[tuple[str, Any]], reason: str
) -> None:
    sweep = tmp_path / "sweep"
    good_sweep(sweep)
    corrupt(sweep / "2", changes)
    rc, out = report(tmp_path)
    assert rc == 0
    assert [r["arm"] for r in read_csv(out / "report.csv")] == ["cnn"]
    (line,) = section((out / "report.md").read_text(), "## Skipped records").strip().splitlines()
    assert line.startswith(f"- `{sweep / '2' / 'metrics.json'}`: ") and reason in line, line


def test_nan_inf_and_huge_numbers_that_convattn_writes_are_read_back(tmp_path: Path) -> None:
    """A diverged loss (inf, NaN) is a real result: what write() wrote, read() reads."""
    record = RunRecord(
        status="completed",
        metrics={"test/acc": 0.5, "test/loss": math.inf, "val/loss": math.nan},
        profile={"train_images_per_s": math.inf},
        per_class_acc=[math.nan, 1.0],
        params=2**63 - 1,
        wall_time_s=1e308,
    )
    record.write(tmp_path)
    back = RunRecord.read(tmp_path)
    assert back.metrics["test/loss"] == math.inf and math.isnan(back.metrics["val/loss"])
    assert back.profile == {"train_images_per_s": math.inf} and back.params == 2**63 - 1
    (attempt,) = read_attempts(tmp_path)
    assert attempt.metrics["test/loss"] == math.inf and attempt.wall_time_s == 1e308


def test_report_shows_an_inf_loss_job_and_a_nan_f1(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "cnn", 0, 0.9, metrics={"test/acc": 0.9, "test/loss": math.inf})
    write_job(sweep, 1, "cnn", 1, 0.8, metrics={"test/acc": 0.8, "test/f1_macro": math.nan})
    rc, out = report(tmp_path)
    assert rc == 0
    (row,) = read_csv(out / "report.csv")
    assert (row["n"], float(row["acc_mean"])) == ("2", pytest.approx(0.85))
    assert "Skipped" not in (out / "report.md").read_text()


def test_numbers_near_the_float_limit_average_to_inf_not_a_crash(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_job(sweep, seed, "cnn", seed, 0.9, wall_time_s=1e308, params=2**63 - 1)
    rc, out = report(tmp_path)
    assert rc == 0
    (row,) = read_csv(out / "report.csv")
    assert (row["n"], row["wall_time_s"], float(row["params"])) == ("2", "inf", 2.0**63)


def test_attempts_lines_are_read_through_the_same_checks(tmp_path: Path) -> None:
    RunRecord(status="failed", error="oom").write(tmp_path)
    RunRecord(status="completed", metrics={"test/acc": 0.9}).write(tmp_path)
    assert [a.status for a in read_attempts(tmp_path)] == ["failed", "completed"]
    with (tmp_path / "attempts.jsonl").open("a") as f:
        f.write(json.dumps({"status": "completed", "epochs": "3"}) + "\n")
    with pytest.raises(RecordError) as err:
        read_attempts(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'attempts.jsonl'} line 3: epochs='3' is not")
    (tmp_path / "attempts.jsonl").write_text('{"status": "failed"}\n{"status": "fail')
    with pytest.raises(RecordError, match=r"attempts.jsonl line 2: JSONDecodeError"):
        read_attempts(tmp_path)
    assert read_attempts(tmp_path / "none") == []


@pytest.mark.parametrize("text", ["[" * 100_000, "1" * 5000, '{"status": "completed"'])
def test_json_that_python_cannot_parse_is_a_record_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(RecordError, match=str(tmp_path / "metrics.json")):
        RunRecord.read(tmp_path)


def test_a_completed_record_that_fails_the_checks_is_never_overwritten(tmp_path: Path) -> None:
    edited = {"status": "completed", "params": "many", "metrics": {"test/acc": 0.9}}
    (tmp_path / "metrics.json").write_text(json.dumps(edited))
    assert completed_record_exists(tmp_path)
    RunRecord(status="failed", error="later").write(tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == edited


def test_the_report_command_on_weird_records_exits_cleanly(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    good_sweep(sweep)
    corrupt(sweep / "2", [("metrics.test/acc", math.nan), ("params", 10**400)])
    write_job(sweep, 3, "vit", 1, record='{"status": "completed", "metrics": {"test/acc": 1e999}}')
    proc = run_cli("convattn-report", str(sweep), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("convattn-report: skipped") == 2
    only_weird = tmp_path / "weird"
    write_job(only_weird, 0, record='{"status": "completed", "metrics": {"test/acc": NaN}}')
    proc = run_cli("convattn-report", str(only_weird), cwd=tmp_path, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text
    assert proc.stderr.startswith("convattn-report: none of the 1 jobs under")
    assert "test/acc=nan is not a fraction" in proc.stderr


# --- swept keys ----------------------------------------------------------------------------


def job(arm: str, seed: int, config: dict[str, float], overridden: tuple[str, ...] = ()) -> Job:
    """A usable job in memory, with these numeric config values."""
    return Job(
        path=Path(f"/x/{arm}/{seed}"),
        status="completed",
        arm=arm,
        size="tiny",
        dataset="digits",
        seed=seed,
        metrics={"test/acc": 0.9},
        config={"seed": seed, **config},
        overridden=frozenset(overridden),
    )


def test_swept_keys_ignore_the_seed_derived_keys_and_arm_defaults() -> None:
    jobs = [
        job(
            arm,
            seed,
            {
                LR: lr,
                "recipe.scheduler.min_lr": lr / 100,  # follows from the swept lr
                "model.embed_dim": {"cnn": 64, "vit": 96}[arm],  # differs only between arms
                "data.split_seed": seed,  # follows from the seed
            },
            overridden=(LR,),
        )
        for arm in ("cnn", "vit")
        for lr in (1e-3, 3e-3)
        for seed in (0, 1)
    ]
    assert swept_keys(jobs) == [LR]
    # without overrides (e.g. W&B configs) a key that varies on its own is still found
    free = [job("vit", s, {"model.drop_path_rate": d}) for s in (0, 1) for d in (0.0, 0.1)]
    assert swept_keys(free) == ["model.drop_path_rate"]
    assert swept_keys([job("cnn", s, {LR: 1e-3}, (LR,)) for s in (0, 1)]) == []


def test_swept_keys_use_completed_jobs_only() -> None:
    jobs = [job("cnn", 0, {LR: 1e-3}, (LR,))]
    failed = job("cnn", 0, {LR: 1e30}, (LR,))
    failed.status = "failed"
    assert swept_keys([*jobs, failed]) == []


def test_span_decade_picks_the_log_axis() -> None:
    assert span_decade([0.1, 0.3, 1.0]) and span_decade([1e-4, 1e-2])
    assert not span_decade([2, 4, 8]) and not span_decade([0.0, 1.0]) and not span_decade([])


# --- curves ---------------------------------------------------------------------------------

FRACTIONS = {
    "cnn": {0.1: [0.80, 0.82, 0.81], 0.3: [0.90, 0.91, 0.92], 1.0: [0.96, 0.97, 0.98]},
    "vit": {0.1: [0.60, 0.62, 0.64], 0.3: [0.94, 0.96, 0.955], 1.0: [0.95, 0.96, 0.97]},
    "hybrid": {0.1: [0.50, 0.55, 0.60], 0.3: [0.80, 0.85, 0.82], 1.0: [0.90, 0.92, 0.91]},
}


def fraction_sweep(sweep: Path) -> None:
    n = 0
    for arm, by_fraction in FRACTIONS.items():
        for fraction, accs in by_fraction.items():
            for seed, acc in enumerate(accs):
                write_job(
                    sweep, n, arm, seed, acc, cfg={FRACTION: fraction}, train_fraction=fraction
                )
                n += 1


def test_train_fraction_curve_tables_and_data_needed(tmp_path: Path) -> None:
    fraction_sweep(tmp_path / "sweep")
    rc, out = report(tmp_path)
    assert rc == 0
    rows = read_csv(out / "report_data.train_fraction.csv")
    assert list(rows[0]) == [
        "arm", "size", "dataset", FRACTION, "n", "acc_mean", "acc_std", "ci_low", "ci_high"
    ]  # fmt: skip
    assert len(rows) == 9
    for row in rows:
        accs = FRACTIONS[row["arm"]][float(row[FRACTION])]
        low, high = t_interval(accs)
        assert int(row["n"]) == 3
        assert float(row["acc_mean"]) == pytest.approx(statistics.fmean(accs), abs=1e-12)
        assert float(row["acc_std"]) == pytest.approx(statistics.stdev(accs), abs=1e-12)
        assert float(row["ci_low"]) == pytest.approx(low) and float(
            row["ci_high"]
        ) == pytest.approx(high)
    text = (out / "report.md").read_text()
    assert "![test accuracy against data.train_fraction](report_data.train_fraction.png)" in text
    assert (out / "report_data.train_fraction.png").stat().st_size > 1000
    section = text.split("## Test accuracy against `data.train_fraction`")[1]
    vit = section.split("### vit (tiny, digits)")[1]
    low, high = t_interval(FRACTIONS["vit"][0.3])
    assert f"| 0.3 | 3 | 95.17 ± 1.04 | [{100 * low:.2f}, {100 * high:.2f}] |" in vit
    # target = cnn's mean at 1.0 (97 %) minus 2 points; smallest fraction whose mean reaches it
    needed = section.split("### Training data needed")[1]
    assert (
        md_row(needed, "| cnn |") == "| cnn | tiny | digits | 81.00 | 91.00 | 97.00 | 95.00 | 1 |"
    )
    assert (
        md_row(needed, "| vit |") == "| vit | tiny | digits | 62.00 | 95.17 | 96.00 | 95.00 | 0.3 |"
    )
    assert md_row(needed, "| hybrid |").endswith("| 91.00 | 95.00 | not reached |")


def test_swept_key_splits_the_per_arm_table_and_the_pairs(tmp_path: Path) -> None:
    fraction_sweep(tmp_path / "sweep")
    rc, out = report(tmp_path)
    assert rc == 0
    text = (out / "report.md").read_text()
    assert "## Per arm and `data.train_fraction`" in text
    assert md_row(text, "| vit | tiny | digits | 0.1 | 3 | – | – | 62.00 ± 2.00 |")
    pairs = text.split("## Against the conv-only baseline")[1]
    assert "at the same `data.train_fraction`" in pairs.splitlines()[0]
    diffs = [FRACTIONS["vit"][0.1][s] - FRACTIONS["cnn"][0.1][s] for s in range(3)]
    low, high = t_interval(diffs)
    assert md_row(pairs, "| vit | tiny | digits | 0.1 |") == (
        f"| vit | tiny | digits | 0.1 | 3 | {100 * statistics.fmean(diffs):+.2f} "
        f"| [{100 * low:+.2f}, {100 * high:+.2f}] |"
    )
    rows = read_csv(out / "report.csv")
    assert [(r["arm"], r[FRACTION]) for r in rows[:3]] == [
        ("cnn", "0.1"),
        ("hybrid", "0.1"),
        ("vit", "0.1"),
    ]


LRS = {
    "cnn": {1e-4: [0.90, 0.92], 1e-3: [0.96, 0.95], 1e-2: [0.70, 0.74]},
    "vit": {1e-4: [0.80, 0.82], 1e-3: [0.85, 0.86], 1e-2: [0.88]},  # one seed at 1e-2
}


def test_learning_rate_curve_best_lr_and_spread(tmp_path: Path) -> None:
    sweep, n = tmp_path / "sweep", 0
    for arm, by_lr in LRS.items():
        for lr, accs in by_lr.items():
            for seed, acc in enumerate(accs):
                cfg = {LR: lr, "recipe.scheduler.min_lr": lr / 100}
                write_job(sweep, n, arm, seed, acc, cfg=cfg, swept=(LR,))
                n += 1
    jobs = collect([sweep])
    assert swept_keys(jobs) == [LR]
    points = curve_points(jobs, LR, [LR])
    best = {s.line[0]: s for s in lr_summaries(points)}
    for arm, by_lr in LRS.items():
        means = {lr: statistics.fmean(accs) for lr, accs in by_lr.items()}
        best_lr = max(means, key=means.get)
        assert best[arm].best_lr == best_lr
        assert best[arm].best_acc == pytest.approx(means[best_lr])
        assert best[arm].spread == pytest.approx(max(means.values()) - min(means.values()))
    assert write_curve_plot(tmp_path / "lr.png", LR, points) == "log"
    rc, out = report(tmp_path)
    assert rc == 0
    text = (out / "report.md").read_text()
    assert "## Test accuracy against `recipe.scheduler.min_lr`" not in text
    sensitivity = text.split("### Learning-rate sensitivity")[1]
    assert md_row(sensitivity, "| cnn |") == "| cnn | tiny | digits | 95.50 | 0.001 | 23.50 |"
    assert md_row(sensitivity, "| vit |") == "| vit | tiny | digits | 88.00 | 0.01 | 7.00 |"
    vit = text.split("### vit (tiny, digits)")[1]
    assert "| 0.01 | 1 | 88.00 ± – | – (one seed) |" in vit
    assert md_row(text, "| cnn | tiny | digits | 0.001 | 2 |")


def test_two_swept_keys_get_a_section_each(tmp_path: Path) -> None:
    sweep, n = tmp_path / "sweep", 0
    for lr in (1e-3, 2e-3):
        for drop in (0.0, 0.1):
            cfg = {LR: lr, "model.drop_path_rate": drop}
            write_job(sweep, n, "cnn", 0, 0.9 + lr * 10 - drop / 10, cfg=cfg)
            n += 1
    rc, out = report(tmp_path)
    assert rc == 0
    text = (out / "report.md").read_text()
    assert "## Test accuracy against `model.drop_path_rate`" in text
    lr_part = text.split("## Test accuracy against `recipe.optimizer.lr`")[1]
    assert "### cnn (tiny, digits, model.drop_path_rate=0.1)" in lr_part
    assert md_row(lr_part, "| cnn | tiny | digits | model.drop_path_rate=0.1 |").endswith(
        "| 91.00 | 0.002 | 1.00 |"
    )
    rows = read_csv(out / "report_recipe.optimizer.lr.csv")
    assert [(r["model.drop_path_rate"], r[LR]) for r in rows] == [
        ("0.0", "0.001"), ("0.0", "0.002"), ("0.1", "0.001"), ("0.1", "0.002")
    ]  # fmt: skip
    assert [float(r["acc_mean"]) for r in rows] == pytest.approx([0.91, 0.92, 0.90, 0.91])
    assert (out / "report_model.drop_path_rate.png").is_file()


# --- deletion, W&B, startup -----------------------------------------------------------------


def test_deletion_skips_jobs_without_a_usable_checkpoint(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "cnn", 0, 0.9)
    broken = write_job(sweep, 1, "cnn", 1, 0.9)
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "best.ckpt").write_bytes(b"not a checkpoint")
    rc, out = report(tmp_path, "--deletion", "4")
    assert rc == 0
    notes = (out / "report.md").read_text().split("## Notes")[1]
    assert f"`{sweep / '0'}`: no checkpoints/best.ckpt" in notes
    assert f"`{broken}`: no deletion AUC:" in notes and "could not be read" in notes
    assert read_csv(out / "report.csv")[0]["deletion_auc"] == "nan"


def test_startup_imports_neither_wandb_nor_plotting() -> None:
    code = (
        "import sys, convattn.report.cli; "
        "print(sorted(m for m in ('wandb', 'matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_wandb_report_run_in_the_sweep_group(tmp_path: Path) -> None:
    sweep = tmp_path / "logs" / "train" / "multiruns" / "2026-01-02_03-04-05_000001"
    n = 0
    for arm in ("cnn", "vit"):
        for fraction in (0.5, 1.0):
            cfg = {FRACTION: fraction, "logger.wandb.project": "ablate"}
            write_job(sweep, n, arm, 0, 0.9 - fraction / 10, cfg=cfg, swept=(FRACTION,))
            n += 1
    out = tmp_path / "report"
    env = {"NETRC": str(tmp_path / "no-netrc")}  # no credentials: offline
    proc = run_cli("convattn-report", str(sweep), "-o", str(out), "--wandb", cwd=tmp_path, env=env)
    (offline,) = (out / "wandb").glob("offline-run-*")
    assert str(offline) in proc.stdout
    records = wandb_records(offline)
    run = next(r["run"] for r in records if r["type"] == "run")
    assert (run["job_type"], run["run_group"], run["project"]) == (
        "report",
        f"train-{sweep.name}",
        "ablate",
    )
    summary: dict[str, Any] = {}
    for record in records:
        if record["type"] == "summary":
            summary |= record["summary"].get("update", {})
    for key in ("per_arm", "paired_vs_cnn", f"curves/{FRACTION}"):
        assert summary[f"{key}._type"] == "table-file"
    for key in ("figures/cost", f"figures/{FRACTION}"):
        assert summary[f"{key}._type"] == "image-file"
    assert summary[f"acc_mean/vit-tiny-digits/{FRACTION}=0.5"] == pytest.approx(0.85)
    assert math.isclose(summary[f"acc_mean/cnn-tiny-digits/{FRACTION}=1"], 0.8)
    # the report's own run is never read back as a training job
    again = run_cli("convattn-report", str(out), "--source", "wandb", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "no jobs found" in again.stderr
