"""The two judge backends: a transformers model run here, and an OpenAI-compatible server over real HTTP."""

import pytest

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.judge_http import OpenAICompatibleJudge
from llavidal_core.evaluation.judge_local import LocalJudge, merge_system_message
from llavidal_core.evaluation.judge_prompts import criterion_messages
from llavidal_core.evaluation.judge_replies import parse_score
from llavidal_core.evaluation.judges import JudgeUnavailableError, make_judge

MESSAGES = criterion_messages("correctness", "What happens?", "The person sits down.", "Someone sits.")


def test_local_judge_replies_through_its_chat_template(scripted_lm):
    judge = make_judge(str(scripted_lm("{'score': 4}")), device="cpu")
    assert isinstance(judge, LocalJudge) and judge.deterministic
    assert judge._model is None  # weights load at the first question only
    assert parse_score(judge.ask(MESSAGES, 64)) == 4.0 and judge.calls == 1
    prompt = judge.render(MESSAGES)
    assert prompt.startswith("system: You are an intelligent chatbot") and prompt.endswith(" ASSISTANT:")
    assert "Predicted Answer: Someone sits." in prompt
    assert judge.identity.startswith("transformers /") and "temperature=0" in judge.identity


def test_local_judge_without_chat_template_is_refused(tiny_llm_dir):
    with pytest.raises(LlavidalError, match="no chat template"):
        LocalJudge(tiny_llm_dir, device="cpu")


def test_missing_local_judge_folder_is_named(tmp_path):
    with pytest.raises(LlavidalError, match="no such model folder"):
        make_judge(str(tmp_path / "nowhere"), device="cpu")


def test_system_text_moves_into_the_user_turn_for_templates_that_refuse_it():
    merged = merge_system_message(MESSAGES)
    assert [m["role"] for m in merged] == ["user"]
    assert merged[0]["content"] == MESSAGES[0]["content"] + "\n\n" + MESSAGES[1]["content"]


def test_http_judge_sends_the_openai_request(openai_server, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sekrit")
    openai_server.respond = lambda messages: "{'score': 2}"
    judge = make_judge(openai_server.model, url=openai_server.url, key_env="MY_JUDGE_KEY")
    assert isinstance(judge, OpenAICompatibleJudge) and not judge.deterministic
    assert parse_score(judge.ask(MESSAGES, 64)) == 2.0
    (request,) = openai_server.requests
    assert request["path"] == "/v1/chat/completions" and request["authorization"] == "Bearer sekrit"
    body = request["body"]
    assert body["model"] == "scripted-judge" and body["messages"] == MESSAGES
    assert body["temperature"] == 0 and body["max_tokens"] == 64
    assert judge.identity == f"openai-compatible scripted-judge at {openai_server.url} temperature=0"


def test_http_judge_without_a_key_sends_a_placeholder(openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    make_judge(openai_server.model, url=openai_server.url).ask(MESSAGES, 8)
    assert openai_server.requests[0]["authorization"] == "Bearer no-key"


def test_a_named_key_variable_must_be_set(openai_server, monkeypatch):
    monkeypatch.delenv("UNSET_JUDGE_KEY", raising=False)
    with pytest.raises(LlavidalError, match="UNSET_JUDGE_KEY is not set"):
        make_judge(openai_server.model, url=openai_server.url, key_env="UNSET_JUDGE_KEY")


def test_unknown_model_and_unreachable_server_stop_the_run(openai_server):
    with pytest.raises(JudgeUnavailableError, match="no model 'llama3.1'"):
        make_judge("llama3.1", url=openai_server.url).ask(MESSAGES, 8)
    port = openai_server.server_address[1]
    openai_server.shutdown()
    openai_server.server_close()
    judge = OpenAICompatibleJudge(f"http://127.0.0.1:{port}/v1", "scripted-judge", max_retries=0, timeout=5)
    with pytest.raises(JudgeUnavailableError, match="cannot reach"):
        judge.ask(MESSAGES, 8)


@pytest.mark.slow
def test_transformers_serve_is_a_judge(transformers_server):
    url, model = transformers_server
    judge = make_judge(model, url=url)
    reply = judge.ask(MESSAGES, 16)
    assert isinstance(reply, str) and reply  # a tiny random LM: noise
    with pytest.raises(ValueError):
        parse_score(reply)
