"""Find the jobs of one or more sweeps and read what each recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.utils import get_class

from convattn.utils.run_record import RECORD_NAME


@dataclass
class Job:
    """One training job: its facts, its final metrics, and how it ended."""

    path: Path
    status: str  # completed | failed | interrupted | unfinished
    arm: str | None = None
    size: str | None = None
    dataset: str | None = None
    seed: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def job_dirs(root: Path) -> list[Path]:
    """Every Hydra job under `root`: a job dir holds `.hydra/config.yaml`."""
    return sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")})


def dataset_name(target: str) -> str | None:
    """The `name` the data module records in metrics.json, so unfinished jobs group alike."""
    try:
        return get_class(target).name
    except Exception:  # an unknown or broken target: the class name is the next best label
        return target.rsplit(".", 1)[-1].replace("DataModule", "").lower() or None


def config_facts(job: Path) -> dict[str, Any]:
    """What a job was asked to do, from its saved config: enough to list it if it never finished."""
    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text()) or {}
    model, data = cfg.get("model") or {}, cfg.get("data") or {}
    dataset = dataset_name(str(data.get("_target_", "")))
    return {
        "arm": model.get("arm"),
        "size": model.get("size"),
        "dataset": dataset,
        "seed": cfg.get("seed"),
    }


def read_job(job: Path) -> Job:
    facts = config_facts(job) if (job / ".hydra" / "config.yaml").is_file() else {}
    record_path = job / RECORD_NAME
    if not record_path.is_file():
        return Job(path=job, status="unfinished", **facts)
    record = json.loads(record_path.read_text())
    facts |= {k: record[k] for k in ("arm", "size", "dataset", "seed") if record.get(k) is not None}
    return Job(
        path=job,
        status=record.get("status", "unfinished"),
        metrics=record.get("metrics", {}),
        facts=record,
        error=record.get("error"),
        **facts,
    )


def wandb_job(run_dir: Path) -> Job:
    """A job read back from a W&B offline run (its summary and config), via `wandb leet`."""
    wandb_bin = Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(wandb_bin), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    summary = json.loads(out.stdout)
    values = summary.get("summary", {})
    facts = (summary.get("config") or {}).get("facts", {})
    status = "completed" if summary.get("state") == "finished" else "failed"
    metrics = {k: v for k, v in values.items() if k.startswith(("test/", "val/"))}
    profile = {k.removeprefix("profile/"): v for k, v in values.items() if k.startswith("profile/")}
    return Job(
        path=run_dir,
        status=status,
        arm=facts.get("arm"),
        size=facts.get("size"),
        dataset=facts.get("dataset"),
        seed=facts.get("seed"),
        metrics=metrics,
        facts={**facts, "profile": profile, "wall_time_s": values.get("wall_time_s")},
    )


def collect(roots: list[Path], source: str = "metrics") -> list[Job]:
    """All jobs under `roots`, from their metrics.json files or from their W&B offline runs."""
    jobs: list[Job] = []
    for root in roots:
        if source == "wandb":
            jobs += [wandb_job(p) for p in sorted(root.rglob("offline-run-*")) if p.is_dir()]
        else:
            jobs += [read_job(d) for d in job_dirs(root)]
    return jobs
