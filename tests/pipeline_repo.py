"""A git+DVC copy of the project on 400 pairs with a tiny model, for the pipeline tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT

PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "pipeline",
    "src",
    ".dvc/config",
    ".dvc/offline-plots.html",  # written by `make install`
    ".gitignore",
)
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
TINY = {
    "split": {"dev_size": 40, "test_size": 40},
    "tokenizer": {"src_vocab_size": 200, "tgt_vocab_size": 200},
    "model": {"embedding_dim": 16, "units": 32},
    "train": {"epochs": 2, "batch_size": 32},
}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """cmd in cwd, with the venv's commands first on PATH and TensorFlow's log level as a
    user has it (unset: the tests' own setting would hide what a user sees)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", output))


def lock_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
    }


def make_repo(tmp_path_factory) -> Path:
    """A git+DVC copy of the project whose params point at a 400-pair corpus, reproduced."""
    repo = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        src, dest = ROOT / name, repo / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest)
    corpus = repo.parent / "tiny.tsv"
    from tests.conftest import sample_pairs

    corpus.write_text("".join(f"{en}\t{es}\n" for en, es in sample_pairs(400)), encoding="utf-8")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="url", url=str(corpus))
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "init"], repo)
    # Every test starts from a trained pipeline; the first test checks this run's output.
    first = run(["dvc", "repro"], repo)
    (repo.parent / "first_repro.txt").write_text(first.stdout)
    (repo.parent / "first_repro_stderr.txt").write_text(first.stderr)
    return repo
