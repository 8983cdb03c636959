"""`nmtpipe serve`: a real server process on 127.0.0.1, spoken to by a real HTTP client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nmtpipe.bench.serve import server_process
from nmtpipe.config import ExportConfig
from tests.serving.conftest import PAIRS

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
LIMITS = ["--char-limit", "600", "--batch-limit", "8", "--body-limit", "4096"]
SENTENCES = [s for s, _ in PAIRS[300:340]]


@pytest.fixture(scope="module")
def exported(trained_dir, tmp_path_factory) -> Path:
    """The tiny Transformer's CTranslate2 directory (int8, as the export stage writes)."""
    from nmtpipe.serving.export import export_model

    out = tmp_path_factory.mktemp("serve") / "export"
    export_model(trained_dir, out, ExportConfig())
    return out / "ctranslate2"


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """The URL of a server of the CTranslate2 model, with small limits."""
    log = tmp_path_factory.mktemp("serve_log") / "server.log"
    with server_process(["--model", str(exported), *LIMITS], log) as (proc, url):
        yield url
    assert proc.returncode == -signal.SIGTERM and "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def expected(exported):
    """The sentences' greedy translations, in this process, by the same engine."""
    from nmtpipe.search.translator import load_engine, translate_sentences

    engine = load_engine(exported)
    return dict(zip(SENTENCES, translate_sentences(engine, SENTENCES), strict=True))


def translate(url: str, **fields) -> httpx.Response:
    body = {"source": "en", "target": "es"} | fields
    return httpx.post(f"{url}/translate", json=body, timeout=60)  # a loaded CI machine


def test_translates_a_string_a_list_lines_and_a_form(served, expected):
    one, two = SENTENCES[:2]
    assert translate(served, q=one).json() == {"translatedText": expected[one]}
    answer = translate(served, q=[one, "", f"{one}\n{two}"], format="text").json()
    assert answer == {"translatedText": [expected[one], "", f"{expected[one]}\n{expected[two]}"]}
    form = httpx.post(
        f"{served}/translate", data={"q": [one, two], "source": "auto", "target": "es"}
    )
    assert form.json() == {"translatedText": [expected[one], expected[two]]}
    beam = translate(served, q=one, beam_size=4, alternatives=2).json()
    assert set(beam) == {"translatedText", "alternatives"} and 1 <= len(beam["alternatives"]) <= 2
    assert beam["translatedText"] not in beam["alternatives"]


def test_languages_settings_health_and_docs(served, exported):
    assert httpx.get(f"{served}/languages").json() == [
        {"code": "en", "name": "English", "targets": ["es"]},
        {"code": "es", "name": "Spanish", "targets": []},
    ]
    settings = httpx.get(f"{served}/frontend/settings").json()
    assert settings["charLimit"] == 600 and settings["keyRequired"] is False
    health = httpx.get(f"{served}/health").json()
    assert (health["engine"], health["model"], health["in_flight"]) == (
        "ctranslate2",
        str(exported),
        0,
    )
    assert httpx.get(f"{served}/openapi.json").json()["info"]["title"] == "nmtpipe"


def test_attention_of_one_sentence(served, expected):
    body = httpx.post(f"{served}/attention", json={"q": SENTENCES[0]}).json()
    assert body["translatedText"] == expected[SENTENCES[0]]
    assert body["target"][-1] == "</s>" and body["source"][-1] == "</s>"
    assert [len(row) for row in body["weights"]] == [len(body["source"])] * len(body["target"])
    assert all(abs(sum(row) - 1) < 1e-2 for row in body["weights"])


def ask(**changes) -> dict:
    """httpx keyword arguments of a JSON /translate request: a good one with changes (a
    field set to None is left out)."""
    fields = {"q": "a", "source": "en", "target": "es"} | changes
    return {"json": {key: value for key, value in fields.items() if value is not None}}


def raw(content: bytes) -> dict:
    return {"content": content, "headers": {"content-type": "application/json"}}


TOO_LONG = "Invalid request: 900 characters exceed the text limit (600)"
BAD = {  # name: (request keyword arguments, status, start of the error)
    "invalid JSON": (raw(b"{q:"), 400, "The request body is not valid JSON"),
    "not an object": ({"json": ["hello"]}, 400, "The request body must be a JSON object"),
    "not UTF-8": (raw(b'{"q": "\xff"}'), 400, "The request body is not valid UTF-8"),
    "multipart": ({"files": {"q": ("q.txt", b"hello")}}, 415, "Send the request as JSON"),
    "no q": (ask(q=None), 400, "Invalid request: missing q"),
    "q a number": (ask(q=3), 400, "Invalid request: q must be"),
    "q a list of lists": (ask(q=[["a"]]), 400, "Invalid request: q must be"),
    "no source": (ask(source=None), 400, "Invalid request: missing source"),
    "no target": (ask(target=None), 400, "Invalid request: missing target"),
    "another pair": (ask(source="fr"), 400, "This server translates en to es, not fr to es"),
    "reversed pair": (ask(source="es", target="en"), 400, "This server translates en to es"),
    "html": (ask(format="html"), 400, "Format 'html' is not supported"),
    "beam 0": (ask(beam_size=0), 400, "Invalid request: beam_size must be an integer from 1"),
    "beam a word": (ask(beam_size="wide"), 400, "Invalid request: beam_size"),
    "alternatives 99": (ask(alternatives=99), 400, "Invalid request: alternatives"),
    "over the batch limit": (ask(q=["a"] * 9), 400, "Invalid request: 9 texts exceed the batch"),
    "over the char limit": (ask(q=["a" * 300] * 3), 400, TOO_LONG),
    "over the body limit": (ask(q="a" * 5000), 413, "The request body exceeds the limit of 4096"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_gets_a_4xx_and_one_sentence(served, case):
    kwargs, status, start = BAD[case]
    response = httpx.post(f"{served}/translate", **kwargs)
    assert_refused(response, status, start)


@pytest.mark.parametrize(
    "method, path, body, status, start",
    [
        ("GET", "/nowhere", None, 404, "There is no /nowhere here"),
        ("GET", "/translate", None, 405, "/translate does not accept GET"),
        ("POST", "/attention", {"q": ["a", "b"]}, 400, "Invalid request: q must be one"),
        ("POST", "/attention", {"q": "  "}, 400, "Invalid request: q must be one"),
        ("POST", "/attention", {}, 400, "Invalid request: missing q"),
    ],
)
def test_other_endpoints_refuse_in_one_sentence(served, method, path, body, status, start):
    assert_refused(httpx.request(method, f"{served}{path}", json=body), status, start)
    assert httpx.get(f"{served}/health").status_code == 200  # and it goes on serving


def assert_refused(response, status: int, start: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"].startswith(start), body
    assert body["error"].endswith(".") and "\n" not in body["error"]
    assert body["error"].count(". ") == 0 and "Traceback" not in body["error"]


def test_concurrent_single_sentences_are_batched(served, expected):
    """32 clients at once, a sentence each: every answer right, in fewer translator calls."""
    before = httpx.get(f"{served}/health").json()["batches"]
    barrier, answers = threading.Barrier(32), {}

    def client(sentence: str) -> None:
        barrier.wait()
        answers[sentence] = translate(served, q=sentence).json()["translatedText"]

    threads = [threading.Thread(target=client, args=(s,)) for s in SENTENCES[:32]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {s: expected[s] for s in SENTENCES[:32]}
    after = httpx.get(f"{served}/health").json()["batches"]
    calls, texts = after["calls"] - before["calls"], after["texts"] - before["texts"]
    assert texts == 32 and calls < 32 and after["largest"] > 1


@pytest.mark.slow
def test_api_key_then_sigterm_answers_the_request_in_flight(trained_dir, tmp_path):
    """The TensorFlow engine with an API key; SIGTERM while a long request is translated:
    the request is answered in full, then the server exits."""
    log = tmp_path / "server.log"
    with server_process(["--model", str(trained_dir), "--api-key", "s3cret"], log) as (proc, url):
        assert_refused(translate(url, q="hello"), 403, "Invalid API key")
        assert_refused(translate(url, q="hello", api_key="guess"), 403, "Invalid API key")
        assert translate(url, q="hello", api_key="s3cret").status_code == 200
        texts = [" ".join(SENTENCES[i : i + 2]) for i in range(0, 40, 2)] * 6  # 120 texts
        result = {}
        request = {"q": texts, "beam_size": 6, "api_key": "s3cret"}
        worker = threading.Thread(target=lambda: result.update(r=translate(url, **request)))
        worker.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/health").json()["in_flight"] == 0:
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        assert result["r"].status_code == 200 and len(result["r"].json()["translatedText"]) == 120
        # uvicorn shuts down, then ends by the signal it caught (as a process manager expects)
        assert proc.wait(30) == -signal.SIGTERM and "Traceback" not in log.read_text()


def test_a_missing_model_is_one_line_and_exit_1(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nmtpipe", "serve", "--model", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("nmtpipe serve: error: ")
    assert json.dumps(str(tmp_path / "none"))[1:-1] in result.stderr


def test_the_page_translates_as_you_type_in_chromium(served, expected):
    """Headless Chromium (Debian's, driven by Playwright), offline: type a sentence, see its
    translation and the heat map of its attention."""
    from tests.browser import ARTIFACTS, need_chromium

    sync_api = pytest.importorskip("playwright.sync_api")
    sentence = SENTENCES[3]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=need_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(served) else route.abort()
            ),
        )
        page.goto(served)
        page.wait_for_function("document.getElementById('pair').textContent.length > 0")
        assert page.text_content("#pair") == "English → Spanish"
        page.type("#source", sentence, delay=20)  # translated as it is typed: wait for the end
        done = "([id, text]) => document.getElementById(id).textContent === text"
        page.wait_for_function(done, arg=["translation", expected[sentence]], timeout=30_000)
        pieces = httpx.post(f"{served}/attention", json={"q": sentence}).json()["target"]
        rows = f"document.querySelectorAll('#attention tbody tr').length === {len(pieces)}"
        page.wait_for_function(rows, timeout=30_000)
        assert page.locator("#attention tbody th").all_text_contents()[-1] == "</s>"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        browser.close()


def test_bench_serve_prints_every_figure(exported, tmp_path, capsys):
    from nmtpipe.bench.serve import main

    (tmp_path / "in.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    main(["--model", str(exported), "--input", str(tmp_path / "in.txt"), "--lines", "100",
          "--beam", "3", "--idle", "10", "--clients", "4", "--requests", "40",
          "--work", str(tmp_path / "work"), "--json", str(tmp_path / "f.json")])  # fmt: skip
    figures = json.loads((tmp_path / "f.json").read_text())
    assert figures["batch_greedy"]["sentences"] == figures["batch_beam3"]["sentences"] == 100
    assert figures["server"]["engine"] == "ctranslate2" and figures["idle"]["requests"] == 10
    assert (figures["load"]["requests"], figures["load"]["failed"]) == (40, 0)
    assert figures["load"]["translator_batches"]["texts"] == 10 + 40
    assert 0 < figures["idle"]["p50_ms"] <= figures["idle"]["p99_ms"]
    assert "share_of_batch_greedy" in capsys.readouterr().out
