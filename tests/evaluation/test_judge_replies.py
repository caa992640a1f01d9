"""Judge replies read strictly, and the prompts as the original words them."""

import pytest

from llavidal_core.evaluation.judge_prompts import (
    consistency_messages,
    criterion_messages,
    mcq_parsing_messages,
    summary_messages,
)
from llavidal_core.evaluation.judge_replies import (
    UnparsableReply,
    parse_option_letter,
    parse_score,
    parse_summary,
)

CHOICES = {"A": "walk to the door", "B": "sit down"}


@pytest.mark.parametrize("reply, score", [
    ("{'score': 4}", 4.0),
    ('{"score": 3}', 3.0),
    ("  {'score': 4.8}\n", 4.8),
    ("```json\n{\"score\": 5}\n```", 5.0),
    ("```\n{'score': 0}\n```", 0.0),
    ("{'score': 2, 'reason': 'partly right'}", 2.0),
])
def test_score_replies_that_parse(reply, score):
    assert parse_score(reply) == score


@pytest.mark.parametrize("reply, why", [
    ("", "empty"),
    ("Score: 4", "not a JSON object"),
    ("The score is {'score': 4}", "not a JSON object"),
    ("{'score': '4'}", "not a number"),
    ("{'score': True}", "not a number"),
    ("{'score': 7}", "outside 0-5"),
    ("{'score': -1}", "outside 0-5"),
    ('{"score": NaN}', "not a number"),
    ("{'points': 4}", "no 'score' key"),
    ("[4]", "not a dict"),
    ("{''score': 4.8}", "not a JSON object"),  # the original's own example is no dict
    ("[" * 5000, "not a JSON object"),
])
def test_score_replies_that_do_not_parse(reply, why):
    with pytest.raises(UnparsableReply, match=why):
        parse_score(reply)


@pytest.mark.parametrize("reply, letter", [
    ("The best answer is: (B)", "B"),
    ("The best answer is (b).", "B"),
    ("(A)", "A"),
    ("A", "A"),
    ("The best answer is: (Z)", "Z"),
    ("The best answer is: (B) sit down", "B"),
    ("**(B)**", "B"),
])
def test_letter_replies_that_parse(reply, letter):
    assert parse_option_letter(reply, CHOICES) == letter


@pytest.mark.parametrize("reply", [
    "", "I cannot tell", "Both A and B", "The best answer is: (C)", "The best answer is: (B) because they sit",
    "(B) walk to the door", "The answer depends on the video",
])
def test_letter_replies_that_do_not_parse(reply):
    with pytest.raises(UnparsableReply):
        parse_option_letter(reply, CHOICES)


def test_a_summary_must_say_something():
    assert parse_summary("  The person sits.\n") == "The person sits."
    with pytest.raises(UnparsableReply):
        parse_summary(" \n")


def test_criterion_prompt_is_the_originals_word_for_word():
    # videochatgpt_scoring.py, get_correctness_score, with Question "Q?", Correct Answer "A.", Predicted "P."
    system, user = criterion_messages("correctness", "Q?", "A.", "P.")
    assert system["role"] == "system" and user["role"] == "user"
    assert system["content"].startswith("You are an intelligent chatbot designed for evaluating the factual accuracy")
    assert "accomplish the task:------##INSTRUCTIONS: - Focus on the factual consistency" in system["content"]
    assert user["content"] == (
        "Please evaluate the following video-based question-answer pair:\n\nQuestion: Q?\nCorrect Answer: A.\n"
        "Predicted Answer: P.\n\nProvide your evaluation only as a factual accuracy score where the factual accuracy "
        "score is an integer value between 0 and 5, with 5 indicating the highest level of factual consistency. "
        "Please generate the response in the form of a Python dictionary string with keys 'score', where its value "
        "is the factual accuracy score in INTEGER, not STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. "
        "Only provide the Python dictionary string. For example, your response should look like this: "
        "{'score': 4.8}.")
    assert criterion_messages("temporal", "q", "a", "p")[1]["content"].endswith("{''score': 4.8}.")
    with pytest.raises(ValueError, match="consistency takes two questions"):
        criterion_messages("consistency", "q", "a", "p")


def test_consistency_summary_and_mcq_prompts_carry_their_inputs():
    user = consistency_messages("Q1", "Q2", "A", "P1", "P2")[1]["content"]
    assert "Question 1: Q1\nQuestion 2: Q2\nCorrect Answer: A\nPredicted Answer to Question 1: P1\n" \
           "Predicted Answer to Question 2: P2\n\n" in user
    assert summary_messages("one. two.")[1]["content"].startswith("The mega caption of the video is: one. two.. ")
    (message,) = mcq_parsing_messages("What next?", "(A) x (B) y", "they sit")
    assert message["role"] == "user"
    assert "Question: What next?\nOptions: (A) x (B) y\nAnswer: they sit\nPlease complete the following: " \
           "The best answer is:\n    " in message["content"]
