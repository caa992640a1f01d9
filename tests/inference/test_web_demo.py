"""The web demo end to end in headless Chromium: ask too early, upload, ask, see the answer stream in."""

import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else
                                                                 shutil.which("chromium")), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def demo_url(saved_model, fake_video_plugins, tmp_path):
    pytest.importorskip("gradio", reason="the web demo needs gradio (pip install 'llavidal-core[web]')")
    from llavidal_core.inference import LlavidalPipeline
    from llavidal_core.inference.web import serve
    from llavidal_core.testing.tiny_video import write_test_video

    example = write_test_video(tmp_path / "example_clip.mp4", num_frames=12)
    pipeline = LlavidalPipeline.from_pretrained(saved_model[0], device="cpu")
    port = free_port()
    demo = serve(pipeline, port=port, examples=[example], block=False, max_new_tokens=6)
    yield f"http://127.0.0.1:{port}/", example
    demo.close()


def last_assistant_text(page) -> str:
    bubbles = page.locator("#llavidal-chat .bot, #llavidal-chat [data-testid='bot']")
    return bubbles.last.inner_text() if bubbles.count() else ""


def test_upload_ask_and_see_an_answer(browser, demo_url):
    url, example = demo_url
    page = browser.new_page()
    requested_hosts = set()
    page.on("request", lambda request: requested_hosts.add(urlparse(request.url).hostname))
    page.goto(url)
    page.wait_for_selector("#llavidal-ask", timeout=60_000)

    page.locator("#llavidal-question textarea").fill("What is the person doing?")
    page.locator("#llavidal-ask").click()
    page.wait_for_function(
        "() => document.querySelector('#llavidal-chat').innerText.includes('Please upload a video first')",
        timeout=30_000)

    page.locator("#llavidal-video input[type=file]").set_input_files(str(example))
    page.wait_for_selector("#llavidal-video video", timeout=30_000)
    page.locator("#llavidal-question textarea").fill("What is the person doing?")
    page.locator("#llavidal-ask").click()
    page.wait_for_function(
        """() => {
            const chat = document.querySelector('#llavidal-chat').innerText;
            return chat.includes('What is the person doing?') && !chat.includes('Please upload a video first');
        }""",
        timeout=60_000)
    page.wait_for_function(
        "() => { const b = document.querySelectorAll('#llavidal-chat .bot, #llavidal-chat [data-testid=\"bot\"]');"
        " return b.length > 0 && b[b.length - 1].innerText.trim().length > 0; }",
        timeout=60_000)
    assert last_assistant_text(page).strip()
    assert "Sorry" not in page.locator("#llavidal-chat").inner_text()
    assert requested_hosts <= {"127.0.0.1", "localhost", None}, requested_hosts  # no CDN, no fonts
