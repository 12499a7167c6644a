"""Find the jobs of one or more sweeps and read what each recorded, never failing on one job.

A job whose record cannot be used (a truncated or corrupt `metrics.json`, a file that is not a
`RunRecord`, a completed run without a test accuracy) becomes a `skipped` job that names the
file and the reason, so the report lists it and goes on with the rest.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from convattn.run.record import RECORD_NAME, RecordError, RunRecord
from convattn.utils.checks import shown
from convattn.utils.config_tree import flatten

TEST_METRIC = "test/acc"
# The fractions the tables average; any other must be NaN (not measured) or in [0, 1].
FRACTION_METRICS = (TEST_METRIC, "test/f1_macro", "test/ece")
REPORT_MARK = "convattn_report"  # in the config of a report's own W&B run: not a job


@dataclass
class Job:
    """One training job: its facts, its final metrics, and how it ended."""

    path: Path
    status: str  # completed | failed | interrupted | unfinished | skipped
    arm: str | None = None
    size: str | None = None
    dataset: str | None = None
    seed: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the run's own error, or why the report skipped it
    source: Path | None = None  # the file `error` is about, for a skipped job
    config: dict[str, float] = field(default_factory=dict)  # numeric config leaves, dotted
    overridden: frozenset[str] = frozenset()  # keys this job's sweep overrides set
    wandb: dict[str, Any] = field(default_factory=dict)  # task_name, project, entity, group
    data_target: str | None = None  # the data module its config names (a path, never imported)

    @property
    def usable(self) -> bool:
        """Completed with a test accuracy: the only jobs the report averages."""
        return self.status == "completed"


def job_dirs(root: Path) -> list[Path]:
    """Every Hydra job under `root`: a job dir holds `.hydra/config.yaml`."""
    return sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")})


def dataset_name(target: str) -> str | None:
    """The `name` the data module records in metrics.json, so unfinished jobs group alike:
    the data registry's, which compares the path and never imports what a job's config names
    (else a guess from the class name)."""
    # Imports convattn's data modules (torch): only for jobs whose record names no dataset.
    from convattn.data.registry import find_dataset

    module = find_dataset(target)
    if module is not None:
        return module.name
    return target.rsplit(".", 1)[-1].replace("DataModule", "").lower() or None


def numeric_leaves(tree: Any) -> dict[str, float]:
    """{"a": {"b": 0.1, "c": "x"}} -> {"a.b": 0.1}: the numbers a sweep can vary (no bools;
    no NaN, inf or integers past the float range, which no sweep sets and no axis can show)."""
    return {path: value for path, value in flatten(tree).items() if is_finite_number(value)}


def read_yaml(path: Path) -> Any:
    """Parsed YAML (safe_load: plain data only); RecordError naming the file if unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: {type(err).__name__}: {err}") from None
    except yaml.YAMLError as err:
        raise RecordError(f"{path}: {type(err).__name__}: {yaml_problem(err)}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def override_keys(job: Path) -> frozenset[str]:
    """The keys of `.hydra/overrides.yaml` (`+a.b=1` -> `a.b`); empty if absent or unreadable,
    since they only rank which varying keys the sweep set on purpose."""
    path = job / ".hydra" / "overrides.yaml"
    try:
        overrides = read_yaml(path) if path.is_file() else []
    except RecordError:
        return frozenset()
    if not isinstance(overrides, list):
        return frozenset()
    return frozenset(str(o).split("=", 1)[0].lstrip("+~") for o in overrides if "=" in str(o))


def section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """`cfg[name]` when it is a mapping, else {} (a hand-edited config must not crash us)."""
    value = cfg.get(name)
    return value if isinstance(value, dict) else {}


def config_job(job: Path) -> Job:
    """What a job was asked to do, from its saved config: enough to list it if it never finished."""
    path = job / ".hydra" / "config.yaml"
    cfg = read_yaml(path) or {}
    if not isinstance(cfg, dict):
        raise RecordError(f"{path}: expected a mapping, found {type(cfg).__name__}")
    model, data = section(cfg, "model"), section(cfg, "data")
    wandb = section(section(cfg, "logger"), "wandb")
    return Job(
        path=job,
        status="unfinished",
        arm=model.get("arm"),
        size=model.get("size"),
        data_target=str(data.get("_target_", "")),  # its dataset: see read_job
        seed=cfg.get("seed"),
        config=numeric_leaves(cfg),
        overridden=override_keys(job),
        wandb={
            "task_name": cfg.get("task_name"),
            **{k: wandb.get(k) for k in ("project", "entity", "group")},
        },
    )


def skip(job: Job, err: RecordError, source: Path) -> Job:
    """Mark `job` skipped with the reason (RecordError's message, less the file it names)."""
    job.status, job.source = "skipped", source
    job.error = " ".join(str(err).removeprefix(f"{source}: ").split())  # one line per job
    return job


def read_job(job: Path) -> Job:
    """One job dir: its config, then its record if it has one."""
    try:
        result = config_job(job)
    except RecordError as err:
        return skip(Job(path=job, status="skipped"), err, job / ".hydra" / "config.yaml")
    result = with_record(result, job)
    if result.dataset is None and result.data_target:  # the record does not name it
        result.dataset = dataset_name(result.data_target)
    return result


def with_record(result: Job, job: Path) -> Job:
    """`result` (read from the job's config) completed by the job's record, if it has one."""
    if not (job / RECORD_NAME).is_file():
        return result
    try:
        record = RunRecord.read(job)
    except RecordError as err:
        return skip(result, err, job / RECORD_NAME)
    for name in ("arm", "size", "dataset", "seed"):
        if getattr(record, name) is not None:
            setattr(result, name, getattr(record, name))
    result.status, result.metrics, result.error = record.status, record.metrics, record.error
    result.facts = asdict(record)  # checked values: floats stay floats (inf too), never strings
    return check_completed(result, job / RECORD_NAME, record.split)


def check_completed(job: Job, source: Path, split: str | None = None) -> Job:
    """A completed job must be comparable with the others, else it is skipped, saying why: it
    needs a test accuracy (not `test=false`, not an eval of another split) and facts of the
    types the tables group and average by."""
    if job.status != "completed":
        return job
    if TEST_METRIC not in job.metrics:
        what = f"an evaluation of split={split}" if split and split != "test" else "test=false?"
        return skip(job, RecordError(f"completed but has no {TEST_METRIC} ({what})"), source)
    if problem := fraction_problem(job.metrics):
        return skip(job, RecordError(problem), source)
    if problem := type_problem(job):
        return skip(job, RecordError(problem), source)
    return job


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A number that is neither NaN nor infinite, and fits a float."""
    try:
        return is_number(value) and math.isfinite(value)
    except OverflowError:  # math.isfinite of an int past the float range
        return False


def fraction_problem(metrics: dict[str, Any]) -> str | None:
    """What in a completed job's metrics cannot be a fraction, or None. A NaN or out-of-range
    test accuracy is not averaged as if it were missing: the job is listed, saying so. The
    other fractions the tables show may be NaN (not measured)."""
    acc = metrics.get(TEST_METRIC)
    if not (is_number(acc) and 0 <= acc <= 1):
        return (
            f"completed but {TEST_METRIC}={shown(acc)} is not a fraction in [0, 1] (the test "
            "diverged, or the record was edited)"
        )
    for name in FRACTION_METRICS:
        value = metrics.get(name, math.nan)
        if not (is_number(value) and (math.isnan(value) or 0 <= value <= 1)):
            return f"{name}={shown(value)} is not a fraction in [0, 1], nor NaN"
    return None


def type_problem(job: Job) -> str | None:
    """What in a job's facts has the wrong type (a hand-edited or foreign record), or None."""
    for name in ("arm", "size", "dataset"):
        if not isinstance(getattr(job, name), (str, type(None))):
            return f"{name} must be a string, found {shown(getattr(job, name))}"
    if job.seed is not None and not (isinstance(job.seed, int) and is_number(job.seed)):
        return f"seed must be an integer, found {shown(job.seed)}"
    for name in ("params", "wall_time_s"):
        if job.facts.get(name) is not None and not is_number(job.facts[name]):
            return f"{name} must be a number, found {shown(job.facts[name])}"
    profile = job.facts.get("profile") or {}
    if not isinstance(profile, dict) or not all(is_number(v) for v in profile.values()):
        return f"profile must map names to numbers, found {shown(profile)}"
    return None


def wandb_job(run_dir: Path) -> Job | None:
    """A job read back from a W&B offline run (its summary and config), via `wandb leet`;
    None for the run of an earlier `convattn-report --wandb`."""
    try:
        summary = json.loads(leet_inspect(run_dir, "--summary"))
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        why = getattr(err, "stderr", None) or str(err)  # wandb's own message when it has one
        return skip(Job(path=run_dir, status="skipped"), RecordError(why.strip()), run_dir)
    if not isinstance(summary, dict):
        why = RecordError(f"W&B summary is a {type(summary).__name__}, not a mapping")
        return skip(Job(path=run_dir, status="skipped"), why, run_dir)
    values, config = section(summary, "summary"), section(summary, "config")
    if config.get(REPORT_MARK):
        return None
    facts = section(config, "facts")
    metrics = {k: v for k, v in values.items() if k.startswith(("test/", "val/"))}
    profile = {k.removeprefix("profile/"): v for k, v in values.items() if k.startswith("profile/")}
    job = Job(
        path=run_dir,
        status="completed" if summary.get("state") == "finished" else "failed",
        arm=facts.get("arm"),
        size=facts.get("size"),
        dataset=facts.get("dataset"),
        seed=facts.get("seed"),
        metrics=metrics,
        facts={**facts, "profile": profile, "wall_time_s": values.get("wall_time_s")},
        # W&B holds the flattened resolved config ("model.arm", ...) beside the nested facts.
        config={
            k: v for k, v in numeric_leaves(config).items() if not k.startswith(("facts.", "_"))
        },
        wandb={"task_name": facts.get("task"), "project": summary.get("project")},
    )
    return check_completed(job, run_dir)


def leet_inspect(run_dir: Path, *flags: str) -> str:
    """`wandb leet inspect --json` of an offline run: W&B's own reader of its .wandb file."""
    wandb_bin = Path(sys.executable).parent / "wandb"
    return subprocess.run(
        [str(wandb_bin), "leet", "inspect", *flags, "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def collect(roots: list[Path], source: str = "metrics") -> list[Job]:
    """All jobs under `roots`, from their metrics.json files or from their W&B offline runs."""
    jobs: list[Job] = []
    for root in roots:
        if source == "wandb":
            runs = [wandb_job(p) for p in sorted(root.rglob("offline-run-*")) if p.is_dir()]
            jobs += [job for job in runs if job is not None]
        else:
            jobs += [read_job(d) for d in job_dirs(root)]
    return jobs
