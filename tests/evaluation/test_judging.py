"""Asking a judge: bounded attempts, failures recorded as failures, every judgement cached on disk."""

import sqlite3

import pytest

from llavidal_core.evaluation.judge_cache import JudgeCache, JudgeCacheError, judgement_key
from llavidal_core.evaluation.judge_replies import parse_score
from llavidal_core.evaluation.judges import Judge, JudgeUnavailableError
from llavidal_core.evaluation.judging import JudgeSession

MESSAGES = [{"role": "user", "content": "score it"}]
FIELDS = {"question": "q", "reference": "r", "prediction": "p"}


class ScriptedJudge(Judge):
    """Replies from a list, in order (the last one repeated); raises when the list holds an exception."""

    def __init__(self, replies, deterministic=False, identity="scripted"):
        super().__init__()
        self.replies = list(replies)
        self.deterministic = deterministic
        self.identity = identity

    def _reply(self, messages, max_tokens):
        reply = self.replies[min(self.calls - 1, len(self.replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        return reply


def ask(session, fields=FIELDS, task="correctness"):
    return session.judge_item(task, fields, MESSAGES, parse_score, 64)


def test_a_bad_reply_is_asked_again_and_a_good_one_kept(tmp_path):
    judge = ScriptedJudge(["I think 4", "{'score': 4}"])
    judgement = ask(JudgeSession(judge, JudgeCache(tmp_path / "cache.sqlite"), attempts=3))
    assert judgement.value == 4.0 and not judgement.failed and judge.calls == 2
    assert judgement.replies == ("I think 4", "{'score': 4}")


def test_a_reply_that_never_parses_is_a_failure_not_a_score(tmp_path):
    judge = ScriptedJudge(["Looks right to me."])
    judgement = ask(JudgeSession(judge, JudgeCache(tmp_path / "cache.sqlite"), attempts=3))
    assert judgement.failed and judgement.value is None and judge.calls == 3
    assert "no parsable reply in 3 attempt(s)" in judgement.failure and len(judgement.replies) == 3


def test_a_deterministic_judge_is_asked_once(tmp_path):
    judge = ScriptedJudge(["garbage", "{'score': 1}"], deterministic=True)
    session = JudgeSession(judge, JudgeCache(tmp_path / "cache.sqlite"), attempts=3)
    assert session.attempts == 1 and ask(session).failed and judge.calls == 1


def test_a_rerun_asks_nothing_and_gets_the_same_judgements(tmp_path):
    path = tmp_path / "cache.sqlite"
    first = JudgeSession(ScriptedJudge(["{'score': 2}"]), JudgeCache(path))
    scored = ask(first)
    failed = ask(JudgeSession(ScriptedJudge(["nope"]), JudgeCache(path)), task="temporal")
    again = JudgeSession(ScriptedJudge(["{'score': 5}"]), JudgeCache(path))  # a new process: the file alone
    assert ask(again).value == scored.value == 2.0 and ask(again).cached
    rerun_failure = ask(again, task="temporal")
    assert rerun_failure.failure == failed.failure and rerun_failure.replies == failed.replies
    assert again.judge.calls == 0 and again.cache_hits == 3


def test_the_key_covers_judge_criterion_and_every_field(tmp_path):
    base = judgement_key("judge-a", "correctness", FIELDS, MESSAGES, 64)
    assert base == judgement_key("judge-a", "correctness", dict(reversed(FIELDS.items())), MESSAGES, 64)
    others = {judgement_key("judge-b", "correctness", FIELDS, MESSAGES, 64),
              judgement_key("judge-a", "temporal", FIELDS, MESSAGES, 64),
              judgement_key("judge-a", "correctness", FIELDS | {"prediction": "p2"}, MESSAGES, 64),
              judgement_key("judge-a", "correctness", FIELDS | {"reference": "r2"}, MESSAGES, 64),
              judgement_key("judge-a", "correctness", FIELDS | {"question": "q2"}, MESSAGES, 64),
              judgement_key("judge-a", "correctness", FIELDS, [{"role": "user", "content": "new prompt"}], 64)}
    assert base not in others and len(others) == 6
    session = JudgeSession(ScriptedJudge(["{'score': 3}"], identity="judge-a"), JudgeCache(tmp_path / "c.sqlite"))
    ask(session)
    ask(session, fields=FIELDS | {"prediction": "another answer"})
    assert session.judge.calls == 2 and len(session.cache) == 2


def test_an_unreachable_judge_stops_the_run_and_caches_nothing(tmp_path):
    cache = JudgeCache(tmp_path / "cache.sqlite")
    session = JudgeSession(ScriptedJudge([JudgeUnavailableError("no server")]), cache)
    with pytest.raises(JudgeUnavailableError):
        ask(session)
    assert len(cache) == 0


def test_a_file_that_is_no_cache_is_named(tmp_path):
    broken = tmp_path / "cache.sqlite"
    broken.write_bytes(b"this is not a database, just some text " * 50)
    with pytest.raises(JudgeCacheError, match="cache.sqlite"):
        JudgeCache(broken)


def test_the_cache_is_plain_sqlite_a_person_can_read(tmp_path):
    path = tmp_path / "cache.sqlite"
    ask(JudgeSession(ScriptedJudge(["{'score': 2}"], identity="my judge"), JudgeCache(path)))
    with sqlite3.connect(path) as db:
        judge, task, request = db.execute("SELECT judge, task, request FROM judgements").fetchone()
    assert (judge, task) == ("my judge", "correctness") and '"prediction": "p"' in request
