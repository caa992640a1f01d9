"""The seed's chat templates, `vicuna_v1_1` (training) and `llavidal_v1` (inference), as data.

Both are the seed's ``SeparatorStyle.TWO`` conversations (reference/llavidal-facts.md §2.5): the system
prompt, then per message ``ROLE + ": " + text`` followed by ``sep`` (" ") after a user message and ``sep2``
("</s>") after an assistant answer; a generation prompt ends with ``"ASSISTANT:"``. The system prompts are
the seed's strings character for character, including the missing space in ``"language.Follow"`` of the
inference prompt. A template also splits a conversation into segments flagged as answer or not, whose
concatenation is exactly the rendered prompt: the processor tokenizes them one by one to build labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

USER, ASSISTANT = "user", "assistant"
_ROLE_ALIASES = {"human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT}


@dataclass(frozen=True)
class ChatTurn:
    role: str
    text: str


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered conversation; ``is_answer`` pieces are what the model learns to produce."""

    text: str
    is_answer: bool


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    sep: str = " "
    sep2: str = "</s>"

    def segments(self, turns: Iterable[ChatTurn | Mapping[str, Any]], add_generation_prompt: bool = False,
                 system: str | None = None) -> list[Segment]:
        """The conversation as prompt and answer segments (answers carry their leading " " and ``sep2``).

        With ``add_generation_prompt`` the conversation must end with a user turn, and the last segment ends
        with the assistant role and its colon, ready for the model to continue. ``system`` replaces the
        template's system text.
        """
        turns = [normalize_turn(turn) for turn in turns]
        check_alternation(turns, self.name)
        if add_generation_prompt and turns[-1].role != USER:
            raise ValueError(f"template {self.name!r}: a generation prompt needs the conversation to end with a user turn")
        segments: list[Segment] = []
        prompt = (self.system if system is None else system) + self.sep
        for turn in turns:
            if turn.role == USER:
                prompt += f"{self.roles[0]}: {turn.text}{self.sep}{self.roles[1]}:"
            else:
                segments.append(Segment(prompt, is_answer=False))
                segments.append(Segment(f" {turn.text}{self.sep2}", is_answer=True))
                prompt = ""
        if prompt:
            if not add_generation_prompt:
                raise ValueError(f"template {self.name!r}: the conversation ends with a user turn and no answer")
            segments.append(Segment(prompt, is_answer=False))
        return segments

    def render(self, turns: Iterable[ChatTurn | Mapping[str, Any]], add_generation_prompt: bool = False,
               system: str | None = None) -> str:
        """The whole prompt string, as the seed's ``Conversation.get_prompt`` writes it."""
        return "".join(segment.text for segment in self.segments(turns, add_generation_prompt, system))


def normalize_turn(turn: ChatTurn | Mapping[str, Any]) -> ChatTurn:
    """Accept ``ChatTurn`` or the instruction JSON's ``{"from": "human"|"gpt", "value": ...}`` (or role/content)."""
    if isinstance(turn, ChatTurn):
        return turn
    role = turn.get("from", turn.get("role"))
    text = turn.get("value", turn.get("content"))
    if role not in _ROLE_ALIASES or not isinstance(text, str):
        raise ValueError(
            f"a conversation turn needs 'from' (human/gpt) or 'role' (user/assistant) and a text 'value' or "
            f"'content'; got {dict(turn)!r}"
        )
    return ChatTurn(_ROLE_ALIASES[role], text)


def check_alternation(turns: list[ChatTurn], template_name: str) -> None:
    if not turns:
        raise ValueError(f"template {template_name!r}: the conversation is empty")
    for index, turn in enumerate(turns):
        expected = USER if index % 2 == 0 else ASSISTANT
        if turn.role != expected:
            raise ValueError(
                f"template {template_name!r}: turn {index} is from {turn.role!r}, expected {expected!r} "
                "(conversations alternate user/assistant, starting with the user)"
            )


VICUNA_V1_1 = ChatTemplate(
    name="vicuna_v1_1",
    system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
)

LLAVIDAL_V1 = ChatTemplate(
    name="llavidal_v1",
    system=(
        "You are llavidal, a large vision-language assistant. "
        "You are able to understand the video content that the user provides, and assist the user with a variety "
        "of tasks using natural language."
        "Follow the instructions carefully and explain your answers in detail based on the provided video."
    ),
)

TEMPLATES = {template.name: template for template in (VICUNA_V1_1, LLAVIDAL_V1)}


def get_template(name: str) -> ChatTemplate:
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; known templates: {sorted(TEMPLATES)}")
    return TEMPLATES[name]


BASE = "base"


class BaseLMTemplate:
    """The base LM's own chat template (Jinja, as its tokenizer has it) used as a llavidal template:
    ``template="base"`` in a processor or recipe, for LMs not prompted in Vicuna style.

    Its segments come from rendering the conversation turn by turn: the answer of turn ``i`` is what rendering
    the turns up to ``i`` adds to the prompt for it, so labels still come from token spans. A template that does
    not render a conversation as the prompt of its first turns followed by the rest (few do not) is refused with
    a ValueError. A BOS token the template writes at the start is dropped: the processor adds the BOS id.
    """

    name = BASE

    def __init__(self, tokenizer: Any, jinja: str) -> None:
        self.tokenizer = tokenizer
        self.jinja = jinja

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(messages, chat_template=self.jinja, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        bos = getattr(self.tokenizer, "bos_token", None)
        return text[len(bos):] if bos and text.startswith(bos) else text

    def segments(self, turns: Iterable[ChatTurn | Mapping[str, Any]], add_generation_prompt: bool = False,
                 system: str | None = None) -> list[Segment]:
        turns = [normalize_turn(turn) for turn in turns]
        check_alternation(turns, self.name)
        if add_generation_prompt and turns[-1].role != USER:
            raise ValueError("template 'base': a generation prompt needs the conversation to end with a user turn")
        if not add_generation_prompt and turns[-1].role == USER:
            raise ValueError("template 'base': the conversation ends with a user turn and no answer")
        messages = [{"role": "system", "content": system}] if system is not None else []
        segments: list[Segment] = []
        done = ""
        for turn in turns:
            if turn.role == ASSISTANT:
                prompt = self._render(messages, add_generation_prompt=True)
                messages.append({"role": ASSISTANT, "content": turn.text})
                full = self._render(messages, add_generation_prompt=False)
                if not (prompt.startswith(done) and full.startswith(prompt)):
                    raise ValueError("template 'base': the base LM's chat template does not render a conversation "
                                     "as its earlier turns followed by the next one, so answers cannot be found "
                                     "by their spans; use template vicuna_v1_1 or llavidal_v1")
                segments += [Segment(prompt[len(done):], is_answer=False), Segment(full[len(prompt):], is_answer=True)]
                done = full
            else:
                messages.append({"role": USER, "content": turn.text})
        if add_generation_prompt:
            prompt = self._render(messages, add_generation_prompt=True)
            if not prompt.startswith(done):
                raise ValueError("template 'base': the base LM's chat template changes earlier turns when a turn is "
                                 "added; use template vicuna_v1_1 or llavidal_v1")
            segments.append(Segment(prompt[len(done):], is_answer=False))
        return segments

    def render(self, turns: Iterable[ChatTurn | Mapping[str, Any]], add_generation_prompt: bool = False,
               system: str | None = None) -> str:
        return "".join(segment.text for segment in self.segments(turns, add_generation_prompt, system))
