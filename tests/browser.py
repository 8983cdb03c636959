"""Headless Chromium (Debian's `chromium`) for checking pages the way a person sees them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"  # any network request fails
# Sets the title, once everything has loaded, to "<images loaded>/<images> <vega views>".
PROBE = """<script>addEventListener("load", () => setTimeout(() => {
  const images = [...document.images];
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  const views = document.querySelectorAll(".vega-embed canvas, .vega-embed svg").length;
  document.title = `probe ${loaded}/${images.length} ${views}`;
}, 500));</script>"""


def need_chromium() -> str:
    """Chromium's path; skip (or, in CI, fail) when it is not installed."""
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def chromium(*args: str) -> str:
    cmd = [need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", OFFLINE, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def probe_page(page: Path) -> tuple[int, int, int]:
    """(images loaded, images, rendered Vega views) of `page` opened offline."""
    probed = page.with_name(f"probe-{page.name}")
    head, body_end, tail = page.read_text(encoding="utf-8").rpartition("</body>")
    probed.write_text(head + PROBE + body_end + tail, encoding="utf-8")
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", probed.as_uri())
    found = re.search(r"<title>probe (\d+)/(\d+) (\d+)</title>", dom)
    assert found, f"the page never finished loading: {dom[:300]!r}"
    return tuple(int(n) for n in found.groups())


def screenshot(page: Path, name: str, height: int = 4000) -> Path:
    """A full-width PNG of `page` under build/test-artifacts/ (kept after the test)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    chromium(
        "--virtual-time-budget=15000",
        f"--window-size=1200,{height}",
        f"--screenshot={out}",
        page.as_uri(),
    )
    assert out.stat().st_size > 10_000, "blank screenshot"
    return out
