"""The web demo (``llavidal serve MODEL``): upload a video, chat about it, watch the answer stream in.

A Gradio app served on localhost that needs nothing from the internet: system fonts only, analytics off.
Asking before a video is uploaded, or any error while answering, shows a message in the chat instead of
a traceback. A new video starts a new conversation; its features are computed once per conversation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from llavidal_core.errors import LlavidalError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

UPLOAD_FIRST = "Please upload a video first (or pick an example below), then ask your question about it."
EMPTY_QUESTION = "Please type a question about the video."


def _import_gradio():
    try:
        import gradio
    except ImportError:
        raise LlavidalError("the web demo needs Gradio: pip install 'llavidal-core[web]'") from None
    return gradio


def offline_theme():
    """Gradio's default look with system fonts, so the page loads nothing from font CDNs."""
    gradio = _import_gradio()
    return gradio.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


class DemoConversation:
    """The state of one browser tab: the chat session and the video it is about."""

    def __init__(self, pipeline, video: str):
        self.video = video
        self.session = pipeline.chat(video=video)


def answer_stream(pipeline, video: str | None, question: str, history: list[dict],
                  conversation: DemoConversation | None, **settings) -> Iterator[tuple]:
    """Yield ``(history, conversation, cleared question box)`` as the answer grows."""
    history = list(history or [])
    question = (question or "").strip()
    if not video:
        yield [*history, {"role": "assistant", "content": UPLOAD_FIRST}], conversation, question
        return
    if not question:
        yield [*history, {"role": "assistant", "content": EMPTY_QUESTION}], conversation, ""
        return
    history.append({"role": "user", "content": question})
    try:
        if conversation is None or conversation.video != video:
            conversation = DemoConversation(pipeline, video)
        history.append({"role": "assistant", "content": ""})
        for piece in conversation.session.stream(question, **settings):
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + piece}
            yield history, conversation, ""
    except (LlavidalError, ValueError, OSError) as exc:
        if history[-1]["role"] == "assistant":
            history.pop()
        history.append({"role": "assistant", "content": f"Sorry, I could not answer: {exc}"})
    yield history, conversation, ""


def build_demo(pipeline, examples: Sequence[str | Path] = (), title: str = "llavidal", max_new_tokens: int = 256):
    """The Gradio Blocks app for ``pipeline``; ``examples`` are video files offered as one-click examples."""
    gradio = _import_gradio()

    with gradio.Blocks(title=title) as demo:
        gradio.Markdown(f"# {title}\nUpload a video of daily activities, then ask about it.")
        conversation = gradio.State(None)
        with gradio.Row():
            with gradio.Column(scale=1):
                video = gradio.Video(label="Video", sources=["upload"], elem_id="llavidal-video")
                if examples:
                    gradio.Examples(examples=[[str(path)] for path in examples], inputs=[video], label="Examples")
            with gradio.Column(scale=2):
                chatbot = gradio.Chatbot(label="Conversation", elem_id="llavidal-chat", height=420)
                question = gradio.Textbox(label="Question", placeholder="What is the person doing?",
                                          elem_id="llavidal-question")
                with gradio.Row():
                    ask = gradio.Button("Ask", variant="primary", elem_id="llavidal-ask")
                    clear = gradio.Button("New conversation", elem_id="llavidal-clear")

        def respond(video_path, text, history, state):
            yield from answer_stream(pipeline, video_path, text, history, state, max_new_tokens=max_new_tokens)

        outputs = [chatbot, conversation, question]
        ask.click(respond, inputs=[video, question, chatbot, conversation], outputs=outputs)
        question.submit(respond, inputs=[video, question, chatbot, conversation], outputs=outputs)
        clear.click(lambda: ([], None), outputs=[chatbot, conversation])
        video.change(lambda: ([], None), outputs=[chatbot, conversation])
    return demo


def serve(pipeline, host: str = "127.0.0.1", port: int = 7860, examples: Sequence[str | Path] = (),
          block: bool = True, max_new_tokens: int = 256):
    """Start the demo on ``host:port``; returns the Blocks app (already running when ``block=False``)."""
    demo = build_demo(pipeline, examples, max_new_tokens=max_new_tokens)
    allowed = sorted({str(Path(path).resolve().parent) for path in examples})
    demo.queue().launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                        theme=offline_theme(), allowed_paths=allowed, footer_links=[], quiet=not block)
    return demo
