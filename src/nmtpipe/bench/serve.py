"""`nmtpipe bench-serve`: how fast a model translates in batch and behind `nmtpipe serve`.

Three figures, each from its own processes on this machine, talking to 127.0.0.1 only:

1. batch: `nmtpipe translate` over --input repeated to --lines lines, greedy and with
   --beam, start-up included (sentences/s of the whole command);
2. idle: one sentence per request to an idle server, --idle requests one after
   another (latency p50/p99, ms);
3. load: --clients clients at once, each sending single sentences until --requests
   have been sent or --max-seconds have passed (sentences/s, its share of the greedy
   batch rate, failed requests, latency p50/p99, the batch sizes the server's
   translator saw).

The clients are Python threads of this process: on a small machine they take CPU from
the server, so the load figure is a lower bound.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nmtpipe.errors import DataError
from nmtpipe.fileio import write_json

log = logging.getLogger(__name__)


@contextmanager
def server_process(args: list[str], log_file: Path, start_timeout_s: float = 120.0):
    """A `nmtpipe serve` process on a free port of 127.0.0.1: yields (process, its URL)
    once /health answers; SIGTERM at the end."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "nmtpipe", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*cmd, *args], stdout=log_file.open("w"), stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + start_timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the server did not start: {log_file.read_text()[-1500:]}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)


def batch_rate(model: list[str], lines: list[str], beam: int, work: Path) -> dict:
    """sentences/s of `nmtpipe translate` over lines, start-up included."""
    source = work / "batch.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "nmtpipe", "translate", *model, "--input", str(source)]
    start = time.perf_counter()
    result = subprocess.run([*cmd, "--beam", str(beam)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"nmtpipe translate failed: {result.stderr.strip()[-500:]}")
    return {
        "sentences": len(lines),
        "seconds": round(seconds, 2),
        "per_s": round(len(lines) / seconds, 1),
    }


def percentiles(latencies: list[float]) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def idle_latency(url: str, pair: dict, sentences: list[str], count: int) -> dict:
    import httpx

    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(count):
            start = time.perf_counter()
            http.post(
                "/translate", json={"q": sentences[i % len(sentences)], **pair}
            ).raise_for_status()
            latencies.append(time.perf_counter() - start)
    return {"requests": count, **percentiles(latencies)}


def load(
    url: str, pair: dict, sentences: list[str], clients: int, requests: int, max_s: float
) -> dict:
    """clients threads, single sentences, until requests are sent or max_s has passed."""
    import httpx

    sent, lock, latencies, failures = [0], threading.Lock(), [], []
    deadline = time.monotonic() + max_s

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= requests:
                        return
                    i = sent[0]
                    sent[0] += 1
                start = time.perf_counter()
                try:
                    ok = (
                        http.post(
                            "/translate", json={"q": sentences[i % len(sentences)], **pair}
                        ).status_code
                        == 200
                    )
                except httpx.HTTPError:
                    ok = False
                (latencies if ok else failures).append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(latencies) + len(failures),
        "failed": len(failures),
        "seconds": round(seconds, 2),
        "per_s": round(len(latencies) / seconds, 1),
        **percentiles(latencies or [0.0]),
    }


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nmtpipe bench-serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="as nmtpipe translate (default: the pipeline's)")
    parser.add_argument("--engine", default="auto", help="as nmtpipe translate")
    parser.add_argument("--input", type=Path, required=True, help="sentences, one per line")
    parser.add_argument("--lines", type=int, default=10_000, help="batch: input repeated to this")
    parser.add_argument(
        "--beam", type=int, default=5, help="batch: the beam measured beside greedy"
    )
    parser.add_argument("--idle", type=int, default=200, help="idle: requests one after another")
    parser.add_argument("--clients", type=int, default=32, help="load: clients at once")
    parser.add_argument("--requests", type=int, default=3000, help="load: requests in all")
    parser.add_argument("--max-seconds", type=float, default=120, help="load: time bound")
    parser.add_argument("--work", type=Path, default=Path("build/bench-serve"), help="scratch dir")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    try:
        sentences = [s for s in args.input.read_text(encoding="utf-8").splitlines() if s.strip()]
    except (FileNotFoundError, UnicodeDecodeError) as err:
        raise DataError(f"{args.input}: cannot read the input ({type(err).__name__})") from None
    if not sentences:
        raise DataError(f"{args.input}: no sentences")
    args.work.mkdir(parents=True, exist_ok=True)
    model = ["--model", str(args.model)] if args.model else []
    model += ["--engine", args.engine]
    lines = (sentences * (args.lines // len(sentences) + 1))[: args.lines]
    figures = {"batch_greedy": batch_rate(model, lines, 1, args.work)}
    figures[f"batch_beam{args.beam}"] = batch_rate(model, lines, args.beam, args.work)
    with server_process(model, args.work / "server.log") as (_, url):
        import httpx

        health = httpx.get(f"{url}/health").json()
        pair = {"source": health["source"], "target": health["target"]}
        figures["server"] = {"engine": health["engine"], "model": health["model"]}
        figures["idle"] = idle_latency(url, pair, sentences, args.idle)
        figures["load"] = load(url, pair, sentences, args.clients, args.requests, args.max_seconds)
        figures["load"]["share_of_batch_greedy"] = round(
            figures["load"]["per_s"] / figures["batch_greedy"]["per_s"], 3
        )
        figures["load"]["translator_batches"] = httpx.get(f"{url}/health").json()["batches"]
    report(figures)
    if args.json:
        write_json(args.json, figures)


def report(figures: dict) -> None:
    for section, values in figures.items():
        shown = {k: v for k, v in values.items() if k != "translator_batches"}
        print(f"{section:<13} " + "  ".join(f"{k} {v}" for k, v in shown.items()))
    batches = figures["load"]["translator_batches"]
    print(f"{'':<13} translator calls {batches['calls']}, largest {batches['largest']} sentences")
