"""Requests' texts translated together, so many single-sentence clients get batch speed.

Each request puts its texts in a queue and awaits them. One worker task takes what is
queued (waiting `wait_s` for company when it finds a single job), groups the jobs by
search settings and hands each group to the translator in one call, on one thread of
its own: the engine is used by one thread at a time, and the event loop keeps
answering other requests meanwhile. A job whose request gave up (timeout, client gone)
is dropped before it is translated.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nmtpipe.search.settings import SearchSettings

log = logging.getLogger(__name__)
# (texts, settings, alternatives) -> one result per text, the translator's call
Translate = Callable[[list[str], SearchSettings, int], list]


@dataclass
class Job:
    texts: list[str]
    settings: SearchSettings
    alternatives: int  # 0: one translation per text; n: n more
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the translator saw: calls and their sizes in texts."""

    sizes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        calls = sum(self.sizes.values())
        return {
            "calls": calls,
            "texts": sum(size * n for size, n in self.sizes.items()),
            "largest": max(self.sizes, default=0),
            "sizes": {str(size): n for size, n in sorted(self.sizes.items())},
        }


class Batcher:
    """The queue and its worker; `start()` inside the server's event loop, `stop()` at
    shutdown, after the requests in flight have been answered.

    Args:
        translate: the translator's call (runs on the batcher's own thread).
        max_texts: most texts per translator call (more jobs wait for the next one).
        wait_s: how long a lone job waits for others before it is translated.
    """

    def __init__(self, translate: Translate, max_texts: int = 256, wait_s: float = 0.002):
        self.translate, self.max_texts, self.wait_s = translate, max_texts, wait_s
        self.stats = BatchStats()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="translate")
        self.pending: deque[Job] = deque()  # touched by the event loop's thread only
        self.ready: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.ready = asyncio.Event()
        self.worker = asyncio.create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, texts: list[str], settings: SearchSettings, alternatives: int = 0):
        """The translations of texts (lists of alternatives when alternatives > 0)."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append(Job(texts, settings, alternatives, future))
        self.ready.set()
        return await future

    async def run_alone(self, function, *args):
        """function(*args) on the translator's thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def _work(self) -> None:
        while True:
            jobs = await self._take()
            groups: dict[tuple, list[Job]] = {}
            for job in jobs:
                if not job.future.done():  # not given up on while queued
                    groups.setdefault((job.settings, job.alternatives), []).append(job)
            for (settings, alternatives), group in groups.items():
                await self._translate(group, settings, alternatives)

    async def _take(self) -> list[Job]:
        """The next jobs: at least one, then what is queued, up to max_texts texts."""
        while not self.pending:
            self.ready.clear()
            await self.ready.wait()
        if len(self.pending) == 1 and self.wait_s > 0:
            await asyncio.sleep(self.wait_s)
        jobs = [self.pending.popleft()]
        count = len(jobs[0].texts)
        while self.pending and count + len(self.pending[0].texts) <= self.max_texts:
            jobs.append(self.pending.popleft())
            count += len(jobs[-1].texts)
        return jobs

    async def _translate(self, group: list[Job], settings: SearchSettings, alternatives: int):
        texts = [text for job in group for text in job.texts]
        try:
            results = await self.run_alone(self.translate, texts, settings, alternatives)
        except Exception as err:  # noqa: BLE001 - each request answers with the error
            log.exception("translating %d texts failed", len(texts))
            for job in group:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.stats.sizes[len(texts)] += 1
        start = 0
        for job in group:
            stop = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(results[start:stop])
            start = stop
