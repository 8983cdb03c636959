"""Experiments and sharing on a real DVC project (400 pairs, tiny model)."""

from __future__ import annotations

import csv
import json
import time

import pytest

from tests.browser import probe_page, screenshot
from tests.conftest import ROOT, run_nmtpipe
from tests.pipeline_repo import GIT, make_repo, run, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory)


def test_parallel_queued_experiments_each_use_one_core(repo, monkeypatch):
    """A sweep on one machine: two queued experiments, two queue workers, NMTPIPE_THREADS=1.
    The workers are processes `dvc queue start` spawns, so they inherit its environment;
    each runs in a copy of the repo under .dvc/tmp/exps that restores the unchanged stages
    from the run-cache (the corpus is read by absolute path: no `-C` needed).
    Runs first in this module: queued runs start from the workspace, still at HEAD here."""
    assert not run([*GIT, "status", "--porcelain", "params.yaml"], repo).stdout  # at HEAD
    fast = ["train.epochs=1", "train.dev_bleu_sentences=0", "evaluate.beam_size=1"]
    sweep = {"q-units24": 24, "q-units40": 40}
    for name, units in sweep.items():
        overrides = [f"-Smodel.units={units}", *(f"-S{s}" for s in fast)]
        run(["dvc", "exp", "run", "--queue", "-n", name, *overrides], repo)
    monkeypatch.setenv("NMTPIPE_THREADS", "1")  # reaches the workers through `run`'s env
    run(["dvc", "queue", "start", "-j", "2"], repo)
    status = wait_for_queue(repo, timeout=600)
    assert status.count("Success") == 2, status
    table = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    rows = {}
    for commit in table:
        for exp in commit.get("experiments") or []:
            data = exp["revs"][0]["data"]
            params = data["params"]["params.yaml"]["data"]
            metrics = {path: file["data"] for path, file in data["metrics"].items()}
            rows[exp["name"]] = (params["model"]["units"], params["train"]["epochs"], metrics)
    for name, units in sweep.items():
        assert rows[name][:2] == (units, 1)
        assert "tok:13a" in rows[name][2]["reports/metrics.json"]["signature"]["bleu"]
    # each row holds its own run's results, not a copy of the other's (24 < 40 units)
    small, large = (rows[name][2]["reports/train/metrics.json"] for name in sweep)
    assert small["parameters"] < large["parameters"]
    assert small["best_val_loss"] != large["best_val_loss"]
    for name in sweep:
        log = run(["dvc", "queue", "logs", name], repo).stdout
        assert "NMTPIPE_THREADS=1: TensorFlow uses at most 1 threads per pool" in log
        assert stages_run(log) == {"train", "evaluate", "export"}  # the rest: run-cache


def wait_for_queue(repo, timeout: float) -> str:
    """Poll `dvc queue status` until no task is queued or running; return its last output.
    (`dvc queue start` returns at once; DVC 3.67's source shows `dvc exp run --run-all -j N`
    blocking instead, but it exits 0 when an experiment fails.)"""
    deadline = time.monotonic() + timeout
    while True:
        status = run(["dvc", "queue", "status"], repo).stdout
        tasks = [line.split()[-1] for line in status.splitlines()[1:] if line.strip()]
        if not {"Queued", "Running"} & set(tasks):
            return status
        assert time.monotonic() < deadline, f"queue still busy after {timeout} s:\n{status}"
        time.sleep(5)


def test_compare_attention_experiments_with_dvc(repo):
    """docs/experiments.md's walkthrough: an experiment with other params, then compare.
    The other params are the other architecture, end to end (train, evaluate, export)
    through the same stages; the baseline experiment is the workspace's own params.
    Then its two ways to see the test scores first, run as the page writes them."""
    run(["dvc", "exp", "run", "-n", "att-bahdanau", "-S", "model.attention=bahdanau"], repo)
    transformer = ["model.arch=transformer", "model.embedding_dim=16", "model.heads=2"]
    transformer += ["train.dev_bleu_sentences=0", "evaluate.beam_size=2"]  # less tracing
    result = run(["dvc", "exp", "run", "-n", "transformer", *(f"-S{s}" for s in transformer)], repo)
    assert stages_run(result.stdout) == {"train", "evaluate", "export"}
    table = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    rows = {}
    for commit in table:
        for exp in commit.get("experiments") or []:
            run_data = exp["revs"][0]["data"]
            params = run_data["params"]["params.yaml"]["data"]["model"]
            metrics = {path: file["data"] for path, file in run_data["metrics"].items()}
            rows[exp["name"]] = (params["attention"], params["arch"], metrics)
    assert rows["transformer"][1] == "transformer"
    assert rows["att-bahdanau"][:2] == ("bahdanau", "rnn")
    rnn, transformer = (rows[name][2] for name in ("att-bahdanau", "transformer"))
    train = "reports/train/metrics.json"
    assert rnn[train]["best_val_loss"] != transformer[train]["best_val_loss"]  # trained apart
    # dvc exp show leads with the scores, then the training time and precision
    assert list(transformer)[:4] == [
        "reports/metrics.json",
        "reports/evaluate_timing.json",
        "reports/train_timing.json",
        "reports/train/metrics.json",
    ]
    table = run(["dvc", "exp", "show", "--csv"], repo).stdout.splitlines()
    header, rows_shown = table[0].split(","), list(csv.DictReader(table))
    fixed = {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}
    metrics = [column for column in header if column not in fixed]
    assert metrics[:3] == ["bleu", "chrf", "ter"]
    assert metrics.index("train_time_s") < metrics.index("precision") < 16
    for name, result in (("att-bahdanau", rnn), ("transformer", transformer)):
        (shown,) = [row for row in rows_shown if row["Experiment"] == name]
        scores, timing = result["reports/metrics.json"], result["reports/train_timing.json"]
        assert [float(shown[key]) for key in ("bleu", "chrf", "ter")] == [
            scores["bleu"], scores["chrf"], scores["ter"]
        ]  # fmt: skip
        assert shown["precision"] == timing["precision"] in ("float32", "mixed_bfloat16")
    kept = run(["bash", "-c", docs_command("Fewer columns: ").split("`")[1] + " --csv"], repo)
    columns = ["Experiment", "Created", "bleu", "chrf", "ter", "train_time_s", "precision"]
    assert kept.stdout.splitlines()[0].split(",") == columns
    diff = run(["dvc", "metrics", "diff", "att-bahdanau", "transformer", "--all", "--json"], repo)
    diff = diff.stdout
    assert "bleu" in json.loads(diff)["reports/metrics.json"]
    out = repo.parent / "plots"
    run(["dvc", "plots", "diff", "att-bahdanau", "transformer", "-o", str(out)], repo)
    page = out / "index.html"
    assert "cdn.jsdelivr" not in page.read_text()
    assert probe_page(page)[2] >= 3  # loss, dev BLEU, learning rate: drawn offline
    screenshot(page, "plots-diff.png", height=2000)


def docs_command(start: str) -> str:
    """The one line of docs/experiments.md that starts with start, as written there."""
    lines = (ROOT / "docs/experiments.md").read_text(encoding="utf-8").splitlines()
    (line,) = [line for line in lines if line.startswith(start)]
    return line


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
