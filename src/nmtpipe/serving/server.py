"""The HTTP server's application: LibreTranslate's API over one loaded engine.

- `POST /translate`: LibreTranslate's request and answer (`api`), texts batched with
  other requests' (`batcher`); each line of a text is translated as a sentence.
- `GET /languages`, `GET /frontend/settings`: LibreTranslate's, for its clients.
- `GET /health`: the model, the requests in flight and the batch sizes served.
- `POST /attention`: one sentence's translation and cross-attention (the page's heat map).
- `GET /`: the page (`resources/serve/index.html`, no CDN).

Every refused request is a 4xx with `{"error": "..."}` in one sentence.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import translate_nbest, translate_sentences, translate_with_attention
from nmtpipe.serving import api
from nmtpipe.serving.api import ApiError, Limits
from nmtpipe.serving.batcher import Batcher

log = logging.getLogger(__name__)
PAGE = resources.files("nmtpipe") / "resources" / "serve" / "index.html"
ENDPOINTS = "POST /translate, GET /languages, GET /health, POST /attention, GET /"


def make_app(
    engine, settings: SearchSettings, limits: Limits, batcher: Batcher, model: str
) -> FastAPI:
    """The application serving engine (a `search.translator` engine, loaded once).

    Args:
        settings: the search of a request that asks for nothing else.
        limits: what one request may ask.
        batcher: the queue that translates the requests' texts (not started yet).
        model: the model's directory, for /health.
    """

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()  # after the requests in flight are answered

    app = FastAPI(title="nmtpipe", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    pair, in_flight, html = tuple(engine.pair), [0], PAGE.read_text(encoding="utf-8")
    src, tgt = ({"code": code, "name": api.language_name(code)} for code in pair)
    add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(html)

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "model": model,
            "engine": engine.name,
            "source": pair[0],
            "target": pair[1],
            "in_flight": in_flight[0],
            "batches": batcher.stats.as_dict(),
        }

    @app.get("/languages")
    async def languages():
        return [src | {"targets": [tgt["code"]]}, tgt | {"targets": []}]

    @app.get("/frontend/settings")
    async def frontend_settings():
        return {
            "charLimit": limits.char_limit,
            "batchLimit": limits.batch_limit,
            "keyRequired": limits.api_key is not None,
            "apiKeys": limits.api_key is not None,
            "language": {"source": src, "target": tgt},
        }

    @app.post("/translate")
    async def translate(request: Request):
        fields = await read_fields(request, limits)
        asked = api.translate_request(fields, pair, limits)
        search = (
            settings if asked.beam_size is None else replace(settings, beam_size=asked.beam_size)
        )
        in_flight[0] += 1
        try:
            texts = await within(limits, translate_texts(batcher, asked, search))
        finally:
            in_flight[0] -= 1
        return answer(asked, texts)

    @app.post("/attention")
    async def attention(request: Request):
        sentence = api.attention_request(await read_fields(request, limits), limits)
        run = batcher.run_alone(translate_with_attention, engine, sentence, settings)
        text, attn = await within(limits, run)
        weights = (
            None
            if attn.weights is None
            else [[round(float(w), 4) for w in row] for row in attn.weights]
        )
        return {
            "translatedText": text,
            "source": attn.src_pieces,
            "target": attn.tgt_pieces,
            "weights": weights,
        }

    return app


def translator_call(engine, batch_size: int):
    """The batcher's call: a text per line in, one translation (or a list of up to n + 1
    with n alternatives) per line out; a call of a few lines is split so that each of
    CTranslate2's workers gets a batch."""

    workers = getattr(engine, "inter_threads", 1)  # CTranslate2 runs that many batches at once

    def call(lines: list[str], search: SearchSettings, alternatives: int) -> list:
        size = min(batch_size, max(8, -(-len(lines) // workers)))  # a batch for each worker
        if alternatives:
            return translate_nbest(engine, lines, search, alternatives + 1, size)
        return translate_sentences(engine, lines, search, size, desc="serve")

    return call


async def translate_texts(batcher: Batcher, asked: api.TranslateRequest, search) -> list:
    """Each text's translation, line by line (with alternatives: (best, [others]))."""
    lines = [text.split("\n") for text in asked.texts]
    flat = await batcher.submit(
        [line for text in lines for line in text], search, asked.alternatives
    )
    out, start = [], 0
    for text in lines:
        hyps, start = flat[start : start + len(text)], start + len(text)
        if not asked.alternatives:
            out.append("\n".join(hyps))
            continue
        best = "\n".join(h[0] for h in hyps)
        others = [
            "\n".join(h[min(k, len(h) - 1)] for h in hyps) for k in range(1, asked.alternatives + 1)
        ]
        out.append((best, [o for o in dict.fromkeys(others) if o != best]))
    return out


def answer(asked: api.TranslateRequest, texts: list) -> dict:
    """LibreTranslate's answer: a string per text (a list for a list), alternatives beside."""
    if not asked.alternatives:
        return {"translatedText": texts if asked.as_list else texts[0]}
    best, others = [t[0] for t in texts], [t[1] for t in texts]
    if asked.as_list:
        return {"translatedText": best, "alternatives": others}
    return {"translatedText": best[0], "alternatives": others[0]}


async def within(limits: Limits, work):
    """work's result, or a 503 after the request timeout (its texts are then dropped)."""
    try:
        return await asyncio.wait_for(work, limits.timeout_s)
    except TimeoutError:
        raise ApiError(
            503, f"The translation took longer than the server's {limits.timeout_s:g} s timeout."
        ) from None


async def read_fields(request: Request, limits: Limits) -> dict:
    """The request's fields; a body over limits.body_bytes is a 413 (read no further)."""
    too_big = ApiError(413, f"The request body exceeds the limit of {limits.body_bytes} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.body_bytes:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.body_bytes:
            raise too_big
    return api.parse_body(bytes(body), request.headers.get("content-type", "application/json"))


def add_error_handlers(app: FastAPI) -> None:
    """Refusals, unknown paths and methods, and server faults as {"error": "..."}."""

    @app.exception_handler(ApiError)
    async def refused(_request, err: ApiError):
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        messages = {
            404: f"There is no {request.url.path} here (the API: {ENDPOINTS}).",
            405: f"{request.url.path} does not accept {request.method}.",
        }
        message = messages.get(err.status_code, f"{err.detail}.")
        return JSONResponse({"error": message}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def fault(_request, err: Exception):
        log.exception("request failed")
        return JSONResponse({"error": f"Internal error: {type(err).__name__}."}, status_code=500)
