"""Driving the web demo in headless Chromium (Debian's chromium through playwright): shared by its tests."""

import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def last_assistant_text(page) -> str:
    bubbles = page.locator("#llavidal-chat .bot, #llavidal-chat [data-testid='bot']")
    return bubbles.last.inner_text() if bubbles.count() else ""


def upload_and_ask(page, video, question: str) -> str:
    """Upload ``video`` on the open page, ask ``question``, wait for the answer to stream in; returns it."""
    page.locator("#llavidal-video input[type=file]").set_input_files(str(video))
    page.wait_for_selector("#llavidal-video video", timeout=30_000)
    page.locator("#llavidal-question textarea").fill(question)
    page.locator("#llavidal-ask").click()
    page.wait_for_function(
        """(question) => {
            const chat = document.querySelector('#llavidal-chat').innerText;
            return chat.includes(question) && !chat.includes('Please upload a video first');
        }""", arg=question, timeout=60_000)
    page.wait_for_function(
        "() => { const b = document.querySelectorAll('#llavidal-chat .bot, #llavidal-chat [data-testid=\"bot\"]');"
        " return b.length > 0 && b[b.length - 1].innerText.trim().length > 0; }",
        timeout=60_000)
    return last_assistant_text(page)
