"""Smoke test: the real `dvc repro` of the whole pipeline on 400 pairs with a tiny model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.browser import probe_page, screenshot
from tests.conftest import ROOT, run_nmtpipe

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
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
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


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory,
):
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
    (repo.parent / "first_repro.txt").write_text(run(["dvc", "repro"], repo).stdout)
    return repo


def test_repro_runs_every_stage_and_writes_every_output(repo):
    assert stages_run((repo.parent / "first_repro.txt").read_text()) == {
        "download",
        "clean",
        "split",
        "tokenize",
        "train",
        "evaluate",
        "export",
    }
    assert json.loads((repo / "data/raw/manifest.json").read_text())["pairs"] == 400
    clean = json.loads((repo / "reports/clean.json").read_text())
    assert clean["pairs_in"] == 400 and clean["pairs_out"] > 350
    sizes = json.loads((repo / "data/split/sizes.json").read_text())
    assert sum(sizes.values()) == clean["pairs_out"] and sizes["test"] >= 40
    for name in ("src.model", "tgt.model", "src.vocab", "tgt.vocab"):
        assert (repo / "data/tokenizers" / name).stat().st_size > 0
    for name in ("model.keras", "config.json", "src.model", "tgt.model"):
        assert (repo / "data/model" / name).stat().st_size > 0
    train = json.loads((repo / "reports/train/metrics.json").read_text())
    assert train["epochs_run"] == 2 and train["train_pairs"] == sizes["train"]
    curves = repo / "reports/train/plots/metrics"
    for curve in ("train/loss", "eval/loss", "eval/bleu", "train/learning_rate"):
        assert len((curves / f"{curve}.tsv").read_text().splitlines()) == 3  # header + 2 epochs
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert {"bleu", "chrf", "ter", "copy_source_bleu"} <= set(metrics)
    assert metrics["signature"]["bleu"].startswith("nrefs:")
    hyps = (repo / "reports/eval/hypotheses.txt").read_text().splitlines()
    assert len(hyps) == metrics["test_sentences"]
    report = (repo / "reports/report.html").read_text()
    for heading in ("Scores", "Data", "Training", "BLEU by source length", "Attention", "Params"):
        assert f"<h2>{heading}</h2>" in report
    assert (repo / "data/export/saved_model.pb").stat().st_size > 0
    assert not list(repo.rglob(".*.tmp-*"))


def test_report_is_self_contained_and_renders_offline_in_chromium(repo):
    report = repo / "reports/report.html"
    html = report.read_text()
    assert "<script" not in html and not re.search(r"(src|href)=['\"]?https?:", html)
    loaded, images, _ = probe_page(report)
    assert images >= 3 and loaded == images  # curves, BLEU by length, attention heatmaps
    screenshot(report, "report.png")


def test_second_repro_runs_nothing(repo):
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], repo).stdout


def test_rerun_from_scratch_is_identical(repo):
    before = lock_outs(repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    hyps = (repo / "reports/eval/hypotheses.txt").read_bytes()
    run(["dvc", "repro", "--force"], repo)
    after = lock_outs(repo)
    for path in ("data/raw", "data/clean", "data/split", "data/tokenizers"):
        assert before[path] == after[path], path
    again = json.loads((repo / "reports/metrics.json").read_text())
    assert (again["bleu"], again["chrf"], again["ter"]) == (
        metrics["bleu"],
        metrics["chrf"],
        metrics["ter"],
    )
    assert (repo / "reports/eval/hypotheses.txt").read_bytes() == hyps


def test_translate_with_the_trained_model(repo):
    result = run_nmtpipe(
        "translate",
        "--model",
        str(repo / "data/model"),
        stdin=b"Where is the station?\n\nI like coffee.\n",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_saved_model_translates_in_a_fresh_process_as_evaluate_did(repo):
    """model.keras reloaded by `nmtpipe translate` (a new process) gives, for every test
    source, exactly the hypothesis the evaluate stage wrote (same beam, other batches)."""
    import pandas as pd

    scores = pd.read_csv(repo / "reports/eval/scores.tsv", sep="\t", keep_default_na=False)
    params = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]
    sources = repo.parent / "test_sources.txt"
    sources.write_text("".join(f"{s}\n" for s in scores["source"]), encoding="utf-8")
    result = run_nmtpipe(
        "translate",
        "--model",
        str(repo / "data/model"),
        "--input",
        str(sources),
        "--beam",
        str(params["beam_size"]),
        "--length-penalty",
        str(params["length_penalty"]),
        "--max-len-ratio",
        str(params["max_len_ratio"]),
        "--batch-size",
        "7",  # not evaluate's batch size: a translation does not depend on its batch
    )
    assert result.returncode == 0, result.stderr
    hyps = (repo / "reports/eval/hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert params["beam_size"] > 1 and len(hyps) == len(scores) > 10
    assert result.stdout.decode().splitlines() == hyps


@pytest.mark.parametrize(
    "change, expected",
    [
        ("evaluate.batch_size=8", {"evaluate"}),
        ("export.max_len_ratio=1.5", {"export"}),
        ("train.learning_rate=0.003", {"train", "evaluate", "export"}),
        ("clean.max_words=8", {"clean", "split", "tokenize", "train", "evaluate", "export"}),
    ],
)
def test_a_param_change_reruns_only_what_depends_on_it(repo, change, expected):
    result = run(["dvc", "exp", "run", "-S", change], repo)
    assert stages_run(result.stdout) == expected


def test_compare_attention_experiments_with_dvc(repo):
    """The experiment walkthrough of docs/experiments.md: one exp per attention type, then compare."""
    for attention in ("bahdanau", "luong", "none"):
        run(
            ["dvc", "exp", "run", "-n", f"att-{attention}", "-S", f"model.attention={attention}"],
            repo,
        )
    table = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    rows = {}
    for commit in table:
        for exp in commit.get("experiments") or []:
            run_data = exp["revs"][0]["data"]
            params = run_data["params"]["params.yaml"]["data"]["model"]
            metrics = run_data["metrics"]["reports/metrics.json"]["data"]
            rows[exp["name"]] = (params["attention"], metrics["bleu"], metrics["chrf"])
    assert {rows[f"att-{a}"][0] for a in ("bahdanau", "luong", "none")} == {
        "bahdanau",
        "luong",
        "none",
    }
    diff = run(["dvc", "metrics", "diff", "att-luong", "att-none", "--all", "--json"], repo).stdout
    assert "bleu" in json.loads(diff)["reports/metrics.json"]
    out = repo.parent / "plots"
    run(["dvc", "plots", "diff", "att-luong", "att-none", "-o", str(out)], repo)
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
