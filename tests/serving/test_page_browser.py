"""The page in a real browser: `seglab serve` with two models in its own process, headless
Chromium (the system's, driven by Playwright) uploads a CamVid image, waits for both overlays
and reads each latency off the page. Skipped, with the reason, where there is no Chromium, no
Playwright or no CamVid; `make test-browser` installs the first two and sets
SEGLAB_REQUIRE_BROWSER=1, which turns those two skips into failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from seglab.serving.process import ServerProcess
from tests.conftest import SHARED_DATASETS, needs_camvid

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    """The browser to drive ($SEGLAB_CHROMIUM, else the first on PATH), or skip (fail under
    SEGLAB_REQUIRE_BROWSER=1) with the reason."""
    require = os.environ.get("SEGLAB_REQUIRE_BROWSER") == "1"
    missing = pytest.fail if require else pytest.skip
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("Playwright is not installed (pip install playwright, or make test-browser)")
    found = os.environ.get("SEGLAB_CHROMIUM") or next(
        filter(None, map(shutil.which, BROWSERS)), None
    )
    if not found:
        missing("no Chromium on this machine (apt-get install chromium, or make test-browser)")
    return found


@pytest.fixture
def browser_path() -> str:
    return chromium()


@pytest.fixture
def server(browser_path, request, tmp_path):
    """`seglab serve` on the two tiny runs until the test ends (the runs are trained only once
    a browser is known to be there)."""
    tiny_runs = request.getfixturevalue("tiny_runs")
    models = [tiny_runs["mobilenet_v2"], tiny_runs["vgg19"]]
    with ServerProcess(models, log=tmp_path / "serve.log", timeout=120) as server:
        yield server.url


@needs_camvid
def test_the_page_shows_each_models_overlay_and_latency(browser_path, server):
    from playwright.sync_api import sync_playwright

    image = sorted((SHARED_DATASETS / "camvid" / "val").glob("*.png"))[0]
    requests, problems = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(server)
            page.wait_for_selector("article.model >> nth=1")
            assert page.locator("article.model").evaluate_all(
                "cards => cards.map(c => c.dataset.model)"
            ) == ["mobilenet_v2", "vgg19"]
            page.set_input_files("#file", str(image))
            for name in ("mobilenet_v2", "vgg19"):
                page.wait_for_selector(f'article.model.done[data-model="{name}"]', timeout=120_000)
            cards = page.locator("article.model")
            for k in range(2):
                card = cards.nth(k)
                latency = float(card.locator(".latency").inner_text())
                inference = float(card.locator(".inference").inner_text())
                assert 0 < inference <= latency
                size = card.locator("img.mask").evaluate("m => [m.naturalWidth, m.naturalHeight]")
                assert size == [480, 360]  # the mask is at the image's size
                shares = card.locator(".legend .share").all_inner_texts()
                assert sum(float(s.rstrip("%")) for s in shares) == pytest.approx(100, abs=1)
                download = card.locator("a.download")
                assert download.is_visible()
                assert (
                    download.get_attribute("download")
                    == f"{Path(image).stem}_" + ("mobilenet_v2" if k == 0 else "vgg19") + ".png"
                )
            page.fill("#opacity", "20")
            opacity = cards.nth(0).locator("img.mask").evaluate("m => getComputedStyle(m).opacity")
            assert float(opacity) == pytest.approx(0.2)
        finally:
            browser.close()
    assert problems == []
    elsewhere = [u for u in requests if not u.startswith((server, "blob:", "data:"))]
    assert elsewhere == []  # nothing loaded from another site
