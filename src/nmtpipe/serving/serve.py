"""`nmtpipe serve`: load a model once, then answer LibreTranslate's API over HTTP.

The engine and model are chosen as `nmtpipe translate` chooses them (with no --model:
the pipeline's CTranslate2 export when there is one, else data/model). The server is
uvicorn's: SIGTERM or Ctrl-C stops accepting connections, answers the requests in
flight, then exits.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from nmtpipe.errors import ConfigError
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import ENGINES, load_engine
from nmtpipe.serving.api import Limits
from nmtpipe.serving.translate import default_model, parse_search_args, search_settings

log = logging.getLogger(__name__)
WARM_UP = ["Hello.", "How are you today?"]  # traced before the first request


def parse_args(argv) -> argparse.Namespace:
    limits = Limits()
    parser = argparse.ArgumentParser(
        prog="nmtpipe serve",
        description="Serve a model over HTTP with LibreTranslate's API (and a page at /).",
    )
    parser.add_argument("--model", type=Path, help="as nmtpipe translate")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="as nmtpipe translate")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parse_search_args(parser)
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per engine batch")
    parser.add_argument(
        "--max-batch", type=int, default=256, help="most sentences translated together"
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="how long a lone request waits for others to batch with",
    )
    parser.add_argument("--char-limit", type=int, default=limits.char_limit, help="per request")
    parser.add_argument("--batch-limit", type=int, default=limits.batch_limit, help="texts/request")
    parser.add_argument("--body-limit", type=int, default=limits.body_bytes, help="bytes/request")
    parser.add_argument("--timeout", type=float, default=limits.timeout_s, help="seconds/request")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("NMTPIPE_API_KEY"),
        help="require this api_key in every request (default: $NMTPIPE_API_KEY, or none)",
    )
    args = parser.parse_args(argv)
    positive = ("beam", "batch_size", "max_batch", "char_limit", "batch_limit", "body_limit")
    positive += ("timeout",)
    bad = [name for name in positive if getattr(args, name) <= 0]
    if bad or args.batch_wait_ms < 0 or not 0 <= args.port < 65536:
        parser.error(f"--{(bad or ['port'])[0].replace('_', '-')} is out of range")
    return args


def main(argv=None) -> None:
    try:
        import uvicorn

        from nmtpipe.serving.batcher import Batcher
        from nmtpipe.serving.server import make_app, translator_call
    except ImportError as err:
        raise ConfigError(
            f"nmtpipe serve needs the serve extra ({err.name} is missing): "
            "pip install 'nmtpipe[serve]'"
        ) from None
    args = parse_args(argv)
    os.environ.setdefault("NMTPIPE_PROGRESS", "0")  # no progress bar per batch served
    model = args.model or default_model(args.engine)
    engine = load_engine(model, args.engine, (args.src_lang, args.tgt_lang))
    settings: SearchSettings = search_settings(args)
    call = translator_call(engine, args.batch_size)
    call(WARM_UP, settings, 0)
    limits = Limits(args.char_limit, args.batch_limit, args.body_limit, args.timeout, args.api_key)
    batcher = Batcher(call, args.max_batch, args.batch_wait_ms / 1000)
    app = make_app(engine, settings, limits, batcher, str(model))
    log.info(
        "serving %s (%s, %s->%s) on http://%s:%d/",
        model, engine.name, *engine.pair, args.host, args.port,
    )  # fmt: skip
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=int(args.timeout) + 5,
    )
