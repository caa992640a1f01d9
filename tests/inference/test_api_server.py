"""The OpenAI-compatible server (``llavidal serve MODEL --api``) driven by the `openai` client itself, on the
tiny saved model whose fake video cue hashes the video's path (so an answer depends on which file was read)."""

import base64
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("fastapi", reason="the API server needs FastAPI (pip install 'llavidal-core[api]')")
openai = pytest.importorskip("openai", reason="the API tests use the openai client (pip install 'llavidal-core[test]')")

from llavidal_core.cli import main  # noqa: E402
from llavidal_core.inference import LlavidalPipeline  # noqa: E402
from llavidal_core.inference.openai_api import ApiOptions, BackgroundServer, VideoSources  # noqa: E402
from llavidal_core.inference.openai_api.responses import stripped_pieces  # noqa: E402

MODEL = "tiny-llavidal"
QUESTION = "What is the person doing?"
TOKENS = 6
LIMIT = 4096  # bytes of video an upload may have in these tests


@pytest.fixture
def pipeline(saved_model, fake_video_plugins):
    return LlavidalPipeline.from_pretrained(saved_model[0], device="cpu")


def start(pipeline, tmp_path, **sources):
    """A server of ``pipeline`` (``max_new_tokens`` 6 unless asked) and an OpenAI client of it."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    options = ApiOptions(MODEL, VideoSources(max_upload_bytes=LIMIT, upload_dir=uploads, **sources),
                         settings=pipeline.settings.with_overrides(max_new_tokens=TOKENS))
    server = BackgroundServer(pipeline, options)
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
    return SimpleNamespace(server=server, client=client, uploads=uploads)


@pytest.fixture
def api(pipeline, saved_model, tmp_path):
    """The server with the clips' folder allowed."""
    served = start(pipeline, tmp_path, allowed_dirs=[Path(saved_model[1][0]).parent])
    yield served
    served.server.close()


def ask(client, video_part=None, question=QUESTION, **options):
    content = [{"type": "text", "text": question}] + ([video_part] if video_part else [])
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **options)


def video_url(url):
    return {"type": "video_url", "video_url": {"url": url}}


def expected_answer(pipeline, video, **settings):
    return pipeline(video=str(Path(video).resolve()), question=QUESTION, **{"max_new_tokens": TOKENS, **settings})


@pytest.fixture
def model_inputs(pipeline, monkeypatch):
    """What the server hands the pipeline to answer: ``(turns, features)`` per call (the tiny model's greedy
    answer hardly depends on the video, so the answer alone cannot show which video was read)."""
    calls = []
    generate_answers, stream_answer = pipeline.generate_answers, pipeline.stream_answer

    def recorded_generate(conversations, features_list, settings=None):
        calls.extend(zip(conversations, features_list))
        return generate_answers(conversations, features_list, settings)

    def recorded_stream(conversation, features, settings=None):
        calls.append((conversation, features))
        return stream_answer(conversation, features, settings)

    monkeypatch.setattr(pipeline, "generate_answers", recorded_generate)
    monkeypatch.setattr(pipeline, "stream_answer", recorded_stream)
    return calls


def assert_asked_about(model_inputs, pipeline, video):
    """The last answer was generated from the pipeline's prompt and the features of ``video``."""
    turns, features = model_inputs[-1]
    expected = pipeline.compute_features([{"video": str(video)}])[0]
    assert turns == [{"role": "user", "content": pipeline.user_message(QUESTION, expected)}]
    assert features.keys() == {"video"} and torch.equal(features["video"], expected["video"])


def test_an_answer_about_a_video_equals_the_pipelines(api, pipeline, saved_model, model_inputs):
    video = Path(saved_model[1][0]).resolve()
    expected = expected_answer(pipeline, video)
    assert expected  # an empty answer would prove nothing
    reply = ask(api.client, video_url(video.as_uri()))
    assert_asked_about(model_inputs, pipeline, video)
    assert reply.object == "chat.completion" and reply.model == MODEL and len(reply.choices) == 1
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason in ("stop", "length")

    features = pipeline.compute_features([{"video": str(video)}])[0]
    prompt = pipeline.processor([[{"from": "human", "value": pipeline.user_message(QUESTION, features)}]],
                                [features], add_generation_prompt=True)["input_ids"]
    assert reply.usage.prompt_tokens == prompt.shape[1] > pipeline.processor.cues[0].num_tokens  # cue tokens count
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    other = Path(saved_model[1][1]).resolve()  # another file gives the pipeline's answer about that file
    expected_other = expected_answer(pipeline, other)
    assert ask(api.client, {"type": "video", "video": str(other)}).choices[0].message.content == expected_other
    assert_asked_about(model_inputs, pipeline, other)


def test_a_streamed_answer_joined_equals_the_pipelines(api, pipeline, saved_model, model_inputs):
    video = Path(saved_model[1][2]).resolve()
    expected = expected_answer(pipeline, video)
    chunks = list(ask(api.client, video_url(str(video)), stream=True, stream_options={"include_usage": True}))
    assert_asked_about(model_inputs, pipeline, video)
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(pieces) == expected and len(pieces) >= 1
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage == ask(api.client, video_url(str(video))).usage


def test_stream_pieces_lose_only_the_answers_outer_whitespace():
    pieces = ["", " \n", " Hello", " ", "", "world", " ", "\n"]
    assert "".join(stripped_pieces(pieces)) == "".join(pieces).strip() == "Hello world"
    assert list(stripped_pieces(["  ", " "])) == []


@pytest.mark.parametrize("reference, rule", [
    ("outside", "outside the allowed video folders"),
    ("link", "outside the allowed video folders"),
    ("dotdot", "outside the allowed video folders"),
    ("relative", "is a relative path"),
    ("missing", "no such video file"),
])
def test_video_paths_outside_the_allowed_folder_are_refused(api, saved_model, tmp_path, reference, rule):
    clips = Path(saved_model[1][0]).parent
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"not for clients")
    link = clips / f"link-{os.getpid()}.mp4"
    if reference == "link":
        link.symlink_to(outside)
    path = {"outside": str(outside), "link": str(link), "dotdot": f"{clips}/../{outside.parent.name}/secret.mp4",
            "relative": "clip_0.mp4", "missing": str(clips / "absent.mp4")}[reference]
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            ask(api.client, video_url(path))
    finally:
        link.unlink(missing_ok=True)
    assert refused.value.status_code == 400 and rule in refused.value.message
    if rule.startswith("outside"):
        assert "--api-allowed-dir" in refused.value.message and refused.value.code == "path_not_allowed"


def test_without_an_allowed_folder_paths_are_refused_but_uploads_answered(pipeline, saved_model, tmp_path):
    served = start(pipeline, tmp_path)
    try:
        with pytest.raises(openai.BadRequestError, match="started without --api-allowed-dir"):
            ask(served.client, video_url(Path(saved_model[1][0]).as_uri()))
        upload = "data:video/mp4;base64," + base64.b64encode(b"a small video" * 10).decode()
        assert ask(served.client, video_url(upload)).choices[0].message.content
        assert list(served.uploads.iterdir()) == []  # the upload is deleted once read
    finally:
        served.server.close()


def test_uploads_over_the_limit_are_413(api):
    over = "data:video/mp4;base64," + base64.b64encode(b"v" * (LIMIT + 100)).decode()
    with pytest.raises(openai.APIStatusError) as refused:
        ask(api.client, video_url(over))
    assert refused.value.status_code == 413 and "at most 0.00390625 MB" in refused.value.message
    huge = "data:video/mp4;base64," + base64.b64encode(b"v" * (2 * 1024 * 1024)).decode()
    with pytest.raises(openai.APIStatusError) as refused:  # the body alone is over the limit: not even parsed
        ask(api.client, video_url(huge))
    assert refused.value.status_code == 413 and "the request is more than" in refused.value.message
    assert list(api.uploads.iterdir()) == []


def test_models_lists_the_served_model_and_another_model_is_404(api):
    assert [model.id for model in api.client.models.list().data] == [MODEL]
    assert api.client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        api.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.code == "model_not_found" and repr(MODEL) in missing.value.message


@pytest.mark.parametrize("messages, options, problem", [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}], {},
     "message 0, part 0: image parts are not supported"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], {},
     "message 0: system messages are not supported"),
    ([{"role": "user", "content": [video_url("/a.mp4"), video_url("/b.mp4")]}], {}, "the request has 2 videos"),
    ([{"role": "user", "content": "Hi"}], {"n": 2}, "n: more than one choice needs sampling"),
    ([{"role": "user", "content": "Hi"}], {"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ([{"role": "user", "content": "Hi"}], {"stop": [""]}, "stop: a stop string must be a non-empty string"),
    ([{"role": "user", "content": [video_url("ftp://host/a.mp4")]}], {},
     "video URLs with the scheme 'ftp' are not supported"),
    ([{"role": "user", "content": [video_url("https://example.org/a.mp4")]}], {},
     "started without --api-allowed-host"),
    ([{"role": "user", "content": "Hi"}], {"logprobs": True}, "logprobs is not supported"),
])
def test_requests_llavidal_cannot_answer_are_400_naming_the_problem(api, messages, options, problem):
    with pytest.raises(openai.BadRequestError) as refused:
        api.client.chat.completions.create(model=MODEL, messages=messages, **options)
    assert problem in refused.value.message


def test_sampled_choices_follow_the_seed(api, pipeline, saved_model):
    video = Path(saved_model[1][3]).resolve()
    reply = ask(api.client, video_url(str(video)), n=2, temperature=1.0, seed=7)
    answers = [choice.message.content for choice in reply.choices]
    torch.manual_seed(7)
    assert answers == expected_answer(pipeline, video, do_sample=True, temperature=1.0, num_return_sequences=2)
    assert [choice.index for choice in reply.choices] == [0, 1]
    assert [c.message.content for c in ask(api.client, video_url(str(video)), n=2, temperature=1.0, seed=7).choices] \
        == answers


def test_videos_are_downloaded_from_allowed_hosts_only(pipeline, saved_model, tmp_path):
    clips = Path(saved_model[1][0]).parent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clips))
    handler.log_message = lambda *args: None
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    served = start(pipeline, tmp_path, allowed_hosts=["127.0.0.1"])
    port = files.server_address[1]
    try:
        assert ask(served.client, video_url(f"http://127.0.0.1:{port}/clip_0.mp4")).choices[0].message.content
        assert list(served.uploads.iterdir()) == []
        with pytest.raises(openai.BadRequestError, match="downloading from localhost is refused"):
            ask(served.client, video_url(f"http://localhost:{port}/clip_0.mp4"))
        with pytest.raises(openai.BadRequestError, match="HTTP 404"):
            ask(served.client, video_url(f"http://127.0.0.1:{port}/absent.mp4"))
    finally:
        served.server.close()
        files.shutdown()
        files.server_close()


@pytest.mark.parametrize("arguments, message", [
    (["--api-allowed-dir", "."], "--api-allowed-dir is for the API server: add --api"),
    (["--api", "--examples", "."], "--examples is for the web demo"),
    (["--api", "--api-max-upload-mb", "0"], "--api-max-upload-mb must be positive"),
])
def test_serve_refuses_options_of_the_other_mode(saved_model, fake_video_plugins, capsys, arguments, message):
    assert main(["serve", str(saved_model[0]), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_the_upload_limit_in_serve_help_is_the_servers():
    from llavidal_core.commands.inference import DEFAULT_MAX_UPLOAD_MB
    from llavidal_core.inference.openai_api.media import MB

    assert VideoSources().max_upload_bytes == DEFAULT_MAX_UPLOAD_MB * MB


def test_serve_names_a_missing_allowed_folder(saved_model, fake_video_plugins, capsys, tmp_path):
    assert main(["serve", str(saved_model[0]), "--api", "--api-allowed-dir", str(tmp_path / "absent")]) == 1
    assert "absent: no such folder (allowed video folder, --api-allowed-dir)" in capsys.readouterr().err


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                             ("localhost", True), ("0.0.0.0", False), ("::", False),
                                             ("192.168.1.20", False), ("example.org", False)])
def test_only_loopback_addresses_count_as_private(host, loopback):
    from llavidal_core.inference.openai_api.server import is_loopback

    assert is_loopback(host) is loopback


SERVE = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import FakeVideoPlugin
from llavidal_core.cli import main
from llavidal_core.plugins import LlavidalPluginManager, set_plugin_manager
manager = LlavidalPluginManager()
set_plugin_manager(manager)
manager.register(FakeVideoPlugin(), name="video", distribution="llavidal-video-fake", version="0.0.1")
sys.exit(main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_llavidal_serve_api_answers_the_openai_client(pipeline, saved_model):
    """``llavidal serve MODEL --api`` in its own process: an answer and a streamed answer about a video."""
    model_dir, videos = saved_model
    video = Path(videos[0]).resolve()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(Path(__file__).parent), "serve", str(model_dir), "--api", "--port", str(port),
         "--api-allowed-dir", str(video.parent), "--max-new-tokens", str(TOKENS), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                assert [model.id for model in client.models.list().data] == [str(model_dir)]
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        expected = expected_answer(pipeline, video)
        question = [{"type": "text", "text": QUESTION}, video_url(video.as_uri())]
        reply = client.chat.completions.create(model=str(model_dir), messages=[{"role": "user", "content": question}])
        assert reply.choices[0].message.content == expected
        stream = client.chat.completions.create(model=str(model_dir), messages=[{"role": "user", "content": question}],
                                                stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == expected
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"serving {model_dir} as {str(model_dir)!r} at http://127.0.0.1:{port}/v1" in output
