"""Experiments, sharing and a killed stage on a real DVC project (400 pairs, tiny model)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import probe_page, screenshot
from tests.conftest import run_nmtpipe
from tests.pipeline_repo import GIT, make_repo, run, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory)


def test_compare_attention_experiments_with_dvc(repo):
    """docs/experiments.md's walkthrough: experiments with other params, then compare.
    (The workspace trains bahdanau; attention `none` needs no run of its own here.)"""
    for attention in ("bahdanau", "luong"):
        run(
            ["dvc", "exp", "run", "-n", f"att-{attention}", "-S", f"model.attention={attention}"],
            repo,
        )
    # the other architecture, end to end (train, evaluate, export) through the same stages
    transformer = ["model.arch=transformer", "model.embedding_dim=16", "model.heads=2"]
    result = run(["dvc", "exp", "run", "-n", "transformer", *(f"-S{s}" for s in transformer)], repo)
    assert stages_run(result.stdout) == {"train", "evaluate", "export"}
    table = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    rows = {}
    for commit in table:
        for exp in commit.get("experiments") or []:
            run_data = exp["revs"][0]["data"]
            params = run_data["params"]["params.yaml"]["data"]["model"]
            metrics = run_data["metrics"]["reports/metrics.json"]["data"]
            rows[exp["name"]] = (params["attention"], metrics["bleu"], params["arch"])
    assert rows["transformer"][2] == "transformer" and rows["transformer"][1] >= 0  # scored
    assert {rows[f"att-{a}"][0] for a in ("bahdanau", "luong")} == {"bahdanau", "luong"}
    diff = run(["dvc", "metrics", "diff", "att-luong", "transformer", "--all", "--json"], repo)
    diff = diff.stdout
    assert "bleu" in json.loads(diff)["reports/metrics.json"]
    out = repo.parent / "plots"
    run(["dvc", "plots", "diff", "att-luong", "transformer", "-o", str(out)], repo)
    page = out / "index.html"
    assert "cdn.jsdelivr" not in page.read_text()
    assert probe_page(page)[2] >= 4  # loss, dev BLEU, learning rate, speed: drawn offline
    screenshot(page, "plots-diff.png", height=2000)


def test_share_through_a_remote_then_pull_into_a_fresh_clone(repo, tmp_path):
    run(["dvc", "repro"], repo)
    run(["dvc", "remote", "add", "-d", "-f", "store", str(tmp_path / "dvc-store")], repo)
    run(["dvc", "push"], repo)
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", "trained pipeline"], repo)
    origin = tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(origin)], tmp_path)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone).stdout
    for name in ("data/model/model.keras", "data/split/test.src", "data/raw/manifest.json"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    result = run_nmtpipe(
        "translate", "--model", str(clone / "data/model"), stdin=b"I like coffee.\n"
    )
    # One line out (a 2-epoch tiny model may well translate to an empty line).
    assert result.returncode == 0 and result.stdout.decode().count("\n") == 1, result.stderr
    # Another project imports the trained model (DVC fetches it from the remote).
    other = tmp_path / "other"
    other.mkdir()
    run(["git", "init", "-q", "-b", "main"], other)
    run(["dvc", "init", "-q"], other)
    run(["dvc", "import", str(origin), "data/model", "-o", "en-es"], other)
    model = (other / "en-es/model.keras").read_bytes()
    assert model == (repo / "data/model/model.keras").read_bytes()
    assert (other / "en-es.dvc").is_file()


def test_robustness_killed_stage_recovers_on_next_dvc_repro(repo):
    """SIGKILL the train stage's process mid-epoch under `dvc repro`; the next repro resumes."""
    import signal
    import time

    import psutil

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["dvc", "repro", "--force", "train"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((repo / "data/checkpoints").glob("epoch-*")):  # an epoch's checkpoint
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    stage = [
        p
        for p in psutil.Process(proc.pid).children(recursive=True)
        if "train" in p.cmdline() and any("nmtpipe" in part for part in p.cmdline())
    ]
    assert stage, "the train stage process was not found"
    for child in stage:
        child.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=120) != 0
    assert not (repo / "data/model/model.keras").exists()  # no half-written model
    assert not (repo / "reports/train/metrics.json").exists()  # nor training summary
    result = run(["dvc", "repro"], repo)
    # Train runs again (its persist output turns the run-cache off) from the checkpoint.
    assert "train" in stages_run(result.stdout), result.stdout
    # From epoch 2, or after it if the kill came late (training had ended, model unsaved).
    assert re.search(r"resuming (from|after) epoch 2 of 2", result.stderr), result.stderr
    assert json.loads((repo / "reports/train/metrics.json").read_text())["epochs_run"] == 2
    assert (repo / "data/model/model.keras").is_file()
    assert list((repo / "data/checkpoints").iterdir()) == []
    # Temporaries of the killed run (removed when the stage next runs) are ignored by git.
    assert ".tmp-" not in run(["git", "status", "--porcelain", "--ignored=no"], repo).stdout
    assert "Data and pipelines are up to date." in run(["dvc", "status"], repo).stdout
