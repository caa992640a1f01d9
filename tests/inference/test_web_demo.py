"""The web demo end to end in headless Chromium: ask too early, upload, ask, see the answer stream in."""

from urllib.parse import urlparse

import pytest

from web_page import free_port, upload_and_ask


pytestmark = pytest.mark.slow


@pytest.fixture
def demo_url(saved_model, fake_video_plugins, tmp_path):
    pytest.importorskip("gradio", reason="the web demo needs gradio (pip install 'llavidal-core[web]')")
    from llavidal_core.inference import LlavidalPipeline
    from llavidal_core.inference.web import serve
    from llavidal_video.testing.videos import write_test_video

    example = write_test_video(tmp_path / "example_clip.mp4", num_frames=12)
    pipeline = LlavidalPipeline.from_pretrained(saved_model[0], device="cpu")
    port = free_port()
    demo = serve(pipeline, port=port, examples=[example], block=False, max_new_tokens=6)
    yield f"http://127.0.0.1:{port}/", example
    demo.close()


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

    assert upload_and_ask(page, example, "What is the person doing?").strip()
    assert "Sorry" not in page.locator("#llavidal-chat").inner_text()
    assert requested_hosts <= {"127.0.0.1", "localhost", None}, requested_hosts  # no CDN, no fonts
