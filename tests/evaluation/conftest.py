"""Judges for the evaluation tests, all real models or real HTTP servers:

- ``scripted_lm``: saves a transformers Llama whose greedy reply to any chat prompt is a given text. Its layers
  add nothing to the residual stream (zero output projections), its embeddings are one-hot and its output
  matrix maps each token to the next one of the reply, so generation walks the reply word by word: a real model,
  chat template, ``generate`` and decoding, with a reply known in advance.
- ``garbage_lm_dir``: a tiny random Llama with a chat template: its replies are noise, never a score.
- ``openai_server``: a stdlib HTTP server on 127.0.0.1 speaking OpenAI's ``/v1/chat/completions`` JSON, its
  replies computed from the request by a function the test sets; every request is recorded.
- ``transformers_server``: ``transformers serve`` of the garbage LM on 127.0.0.1 (a real OpenAI-compatible server).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from llavidal_core import hookimpl

from llavidal_core.testing.scripted_lm import CHAT_TEMPLATE, save_garbage_lm, save_scripted_lm  # noqa: F401


@pytest.fixture(autouse=True)
def single_threaded(one_torch_thread):
    """Tiny models gain nothing from threads, and the CPU is shared."""


@pytest.fixture(scope="session")
def scripted_lm(tmp_path_factory):
    """``scripted_lm(reply)``: the folder of a model that always replies ``reply`` (made once per reply)."""
    made: dict[str, Path] = {}

    def make(reply: str) -> Path:
        if reply not in made:
            made[reply] = save_scripted_lm(tmp_path_factory.mktemp("scripted-judge"), reply)
        return made[reply]

    return make


@pytest.fixture(scope="session")
def garbage_lm_dir(tmp_path_factory) -> Path:
    """A tiny random chat LM: replies are noise."""
    return save_garbage_lm(tmp_path_factory.mktemp("garbage-judge"))


class OpenAIHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                "body": request})
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        if request.get("model") != server.model:
            return self._send(404, {"error": {"message": f"model {request.get('model')!r} not found",
                                              "type": "invalid_request_error", "code": "model_not_found"}})
        content = server.respond(request["messages"])
        self._send(200, {"id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                         "model": server.model,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


@pytest.fixture
def openai_server():
    """A real HTTP server at ``.url`` (``http://127.0.0.1:PORT/v1``) serving the model ``.model``; set
    ``.respond(messages) -> str``; ``.requests`` lists what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIHandler)
    server.model = "scripted-judge"
    server.requests = []
    server.respond = lambda messages: "{'score': 3}"
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def transformers_server(garbage_lm_dir, tmp_path_factory):
    """``transformers serve`` of the garbage LM on 127.0.0.1, offline: ``(url, model name)``."""
    executable = Path(sys.executable).with_name("transformers")
    if not executable.is_file():
        pytest.skip("the transformers command is not installed beside this Python")
    port = _free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    log = open(log_path, "wb")  # a file, not a pipe: a full pipe would stall the server
    process = subprocess.Popen([str(executable), "serve", str(garbage_lm_dir), "--host", "127.0.0.1", "--port",
                                str(port), "--device", "cpu"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"transformers serve exited: {log_path.read_text(errors='replace')[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("transformers serve did not answer /health in 90 s")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1", str(garbage_lm_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class FakeVideoPlugin:
    """The fake cue registered as "video", so that a model with it reads video files (the encoder hashes paths)."""

    @staticmethod
    def spec():
        import dataclasses

        from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC

        return dataclasses.replace(FAKE_CUE_SPEC, name="video", placeholder="<video>", patch_token="<vid_patch>",
                                   start_token="<vid_start>", end_token="<vid_end>")

    @hookimpl
    def llavidal_register_cues(self, register):
        register(self.spec(), encoder="llavidal_core.testing.fake_cue_encoder:FakeCueEncoder")


@pytest.fixture
def fake_video_plugins(llavidal_plugins):
    llavidal_plugins.register(FakeVideoPlugin(), name="video", distribution="llavidal-video-fake", version="0.0.1")
    return llavidal_plugins


@pytest.fixture(scope="session")
def described_model(tmp_path_factory) -> Path:
    """A tiny random llavidal model whose one cue is the fake "video" cue, saved with its encoder's folder."""
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("described-model")
    spec = FakeVideoPlugin.spec()
    torch.manual_seed(0)
    FakeCueEncoder().save_pretrained(root / "encoder")
    processor = LlavidalProcessor(build_tiny_tokenizer(), [spec])
    model = LlavidalForConditionalGeneration.from_language_model(
        build_tiny_causal_lm(seed=3), [spec], processor.cue_token_ids, cue_encoders={"video": str(root / "encoder")})
    model.save_pretrained(root / "model", processor=processor)
    return root / "model"
