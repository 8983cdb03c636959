"""Smoke test: the real `dvc repro` of the whole pipeline on 400 pairs with a tiny model."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.browser import probe_page, screenshot
from tests.conftest import run_nmtpipe
from tests.pipeline_repo import lock_outs, make_repo, run, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory)


def test_repro_runs_every_stage_and_writes_every_output(repo):
    assert stages_run((repo.parent / "first_repro.txt").read_text()) == {
        "download",
        "clean",
        "split",
        "tokenize",
        "encode",
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
    encoded = json.loads((repo / "data/encoded/stats.json").read_text())
    assert encoded["pairs"] + encoded["too_long"] == sizes["train"]
    assert (repo / "data/encoded/train-00000-of-00001.tfrecord.gz").stat().st_size > 0
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
    assert list((repo / "data/checkpoints").iterdir()) == []  # a complete run deletes its own
    timing = json.loads((repo / "reports/train_timing.json").read_text())
    assert len(timing["epoch_time_s"]) == 2 and timing["pairs_per_s"] > 0
    assert json.loads((repo / "reports/evaluate_timing.json").read_text())["sentences_per_s"] > 0
    # TensorFlow's C++ start-up log (oneDNN, CUDA stubs, cuInit on a machine without a GPU)
    # is hidden; the stages' own log is not
    stderr = (repo.parent / "first_repro_stderr.txt").read_text()
    assert not re.search(r"^[IWE]\d{4} |cuInit|absl::InitializeLog", stderr, re.M), stderr
    assert "nmtpipe.training.train INFO: best dev loss" in stderr


def test_report_is_self_contained_and_renders_offline_in_chromium(repo):
    report = repo / "reports/report.html"
    html = report.read_text()
    assert "<script" not in html and not re.search(r"(src|href)=['\"]?https?:", html)
    loaded, images, _ = probe_page(report)
    assert images >= 3 and loaded == images  # curves, BLEU by length, attention heatmaps
    screenshot(report, "report.png")


def test_second_repro_runs_nothing(repo):
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], repo).stdout


def test_rerun_from_scratch_gives_the_same_lock_but_for_the_timing_files(repo):
    """Every stage forced to run again (train and export included, no run-cache) writes the
    same bytes: dvc.lock differs only in the two timing files' hashes."""
    before = yaml.safe_load((repo / "dvc.lock").read_text())
    result = run(["dvc", "repro", "--force", "--no-run-cache"], repo)
    assert len(stages_run(result.stdout)) == 8
    after = yaml.safe_load((repo / "dvc.lock").read_text())
    assert _without_timing_hashes(after) == _without_timing_hashes(before)
    assert _without_timing_hashes(after) != after  # (the timing files are outputs)


def _without_timing_hashes(lock: dict) -> dict:
    """dvc.lock with the *timing*.json outputs' hashes and sizes taken out."""
    lock = copy.deepcopy(lock)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if "timing" in out["path"]:
                del out["md5"], out["size"]
    return lock


def test_returning_to_params_trained_before_restores_train_from_the_run_cache(repo):
    """Params A (the repo's), then B, then A again: the third run trains nothing. (Evaluate
    runs again: its git-tracked outputs keep DVC from saving its runs; same bytes.)"""
    params_file = repo / "params.yaml"
    original, outs = params_file.read_text(), lock_outs(repo)
    params = yaml.safe_load(original)
    params["model"]["attention"] = "luong"
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        assert "train" in stages_run(run(["dvc", "repro"], repo).stdout)  # B trains
        params_file.write_text(original)
        again = run(["dvc", "repro"], repo)
        assert stages_run(again.stdout) == {"evaluate"}, again.stdout
        assert "Stage 'train' is cached - skipping run" in again.stdout
        assert "Stage 'export' is cached - skipping run" in again.stdout
        restored = {path: md5 for path, md5 in lock_outs(repo).items() if "timing" not in path}
        assert restored == {path: md5 for path, md5 in outs.items() if "timing" not in path}
    finally:
        params_file.write_text(original)


def test_saved_model_translates_in_a_fresh_process_as_evaluate_did(repo):
    """model.keras reloaded by `nmtpipe translate` (a new process) gives, for every test
    source, exactly the hypothesis the evaluate stage wrote (same beam, other batches);
    a blank input line gives a blank output line."""
    import pandas as pd

    scores = pd.read_csv(repo / "reports/eval/scores.tsv", sep="\t", keep_default_na=False)
    params = yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]
    sources = repo.parent / "test_sources.txt"
    lines = [scores["source"][0], "", *scores["source"][1:]]
    sources.write_text("".join(f"{s}\n" for s in lines), encoding="utf-8")
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
    assert result.stdout.decode().splitlines() == [hyps[0], "", *hyps[1:]]


@pytest.mark.parametrize(
    "change, expected",
    [
        ("evaluate.batch_size=8", {"evaluate"}),
        ("export.max_len_ratio=1.5", {"export"}),
        # evaluate lists every section: its report shows the params behind the scores
        ("train.learning_rate=0.003", {"train", "evaluate"}),
        ("clean.max_words=8", {"clean", "evaluate"}),
    ],
)
def test_a_param_change_reruns_only_the_stages_that_read_it(repo, change, expected):
    """The stages a param change makes out of date by itself (`dvc repro --dry`: DVC then
    re-runs whatever reads their outputs, as the experiments below show for real)."""
    params_file = repo / "params.yaml"
    before = params_file.read_text()
    key, value = change.split("=")
    params = yaml.safe_load(before)
    section, name = key.split(".")
    params[section][name] = yaml.safe_load(value)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert stages_run(run(["dvc", "repro", "--dry"], repo).stdout) == expected
    finally:
        params_file.write_text(before)


def test_robustness_killed_stage_recovers_on_next_dvc_repro(repo):
    """SIGKILL the train stage's process mid-epoch under `dvc repro`; the next repro resumes.
    (Last in this module: it leaves evaluate and export to run.)"""
    import signal
    import time

    import psutil

    params = yaml.safe_load((repo / "params.yaml").read_text())
    # inputs never trained before: nothing in the run-cache (a train.* key encode does not
    # read: --single-item runs train alone, and train refuses shards of other params)
    params["train"]["learning_rate"] *= 0.5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["dvc", "repro", "--single-item", "train"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((repo / "data/checkpoints").glob("*/epoch-*")):  # an epoch's checkpoint
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
    result = run(["dvc", "repro", "train"], repo)  # (evaluate and export: as after any train)
    # Train runs again from its checkpoint (the run-cache has no run of these inputs).
    assert "train" in stages_run(result.stdout), result.stdout
    # From epoch 2, or after it if the kill came late (training had ended, model unsaved).
    assert re.search(r"resuming (from|after) epoch 2 of 2", result.stderr), result.stderr
    assert json.loads((repo / "reports/train/metrics.json").read_text())["epochs_run"] == 2
    assert (repo / "data/model/model.keras").is_file()
    assert list((repo / "data/checkpoints").iterdir()) == []
    # Temporaries of the killed run (removed when the stage next runs) are ignored by git.
    assert ".tmp-" not in run(["git", "status", "--porcelain", "--ignored=no"], repo).stdout
    assert "Data and pipelines are up to date." in run(["dvc", "status", "train"], repo).stdout
