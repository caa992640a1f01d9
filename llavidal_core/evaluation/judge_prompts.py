"""The LLM judge's prompts, word for word as LLAVIDAL's evaluation sends them.

Sources (GitHub ADL-X/LLAVIDAL):

- the five Video-ChatGPT criteria, ``evaluation/ADL-X/videochatgpt_scoring.py`` (``get_correctness_score``,
  ``get_detail_orientation_score``, ``get_context_score``, ``get_temporal_score``, ``get_consistency_score``);
- the summary of a TSU video's per-clip descriptions, ``evaluation/ADL-X/eval_tsu_desc.py`` (``merge_clip_desc``);
- the reading of a free-text MCQ answer as a letter, ``evaluation/ADL-X/mcq_parsing_llm.py`` (``build_prompt``).

The original's strings are kept as they are, typos included (the example ``{''score': 4.8}`` of three criteria,
"INTEGER" asked for beside an example of 4.8, "------" glued to the sentences), so that a judge sees exactly
what the paper's judge saw. Each builder returns chat messages, ``[{"role": ..., "content": ...}]``.
"""

from __future__ import annotations

CRITERIA = ("correctness", "detail_orientation", "contextual", "temporal", "consistency")
"""The five criteria, in the original's order; each scores 0-5. ``consistency`` takes two questions."""

_SCORE_REQUEST = (
    "Provide your evaluation only as {what} score where the {name} score is an integer value between 0 and 5, "
    "with 5 indicating the highest level of {level}. "
    "Please generate the response in the form of a Python dictionary string with keys 'score', where its value "
    "is {value} in INTEGER, not STRING."
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
    "For example, your response should look like this: {example}."
)

_SYSTEM = {
    "correctness": (
        "You are an intelligent chatbot designed for evaluating the factual accuracy of generative outputs for "
        "video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if they are factually "
        "consistent. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the factual consistency between the predicted answer and the correct answer. The predicted "
        "answer should not contain any misinterpretations or misinformation.\n"
        "- The predicted answer must be factually accurate and align with the video content.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Evaluate the factual accuracy of the prediction compared to the answer."
    ),
    "detail_orientation": (
        "You are an intelligent chatbot designed for evaluating the detail orientation of generative outputs for "
        "video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine its level of detail, "
        "considering both completeness and specificity. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Check if the predicted answer covers all major points from the video. The response should not leave "
        "out any key aspects.\n"
        "- Evaluate whether the predicted answer includes specific details rather than just generic points. It "
        "should provide comprehensive information that is tied to specific elements of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide a single evaluation score that reflects the level of detail orientation of the prediction, "
        "considering both completeness and specificity."
    ),
    "contextual": (
        "You are an intelligent chatbot designed for evaluating the contextual understanding of generative outputs "
        "for video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if the generated "
        "response aligns with the overall context of the video content. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Evaluate whether the predicted answer aligns with the overall context of the video content. It should "
        "not provide information that is out of context or misaligned.\n"
        "- The predicted answer must capture the main themes and sentiments of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide your evaluation of the contextual understanding of the prediction compared to the answer."
    ),
    "temporal": (
        "You are an intelligent chatbot designed for evaluating the temporal understanding of generative outputs "
        "for video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if they correctly "
        "reflect the temporal sequence of events in the video content. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the temporal consistency between the predicted answer and the correct answer. The predicted "
        "answer should correctly reflect the sequence of events or details as they are presented in the video "
        "content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if the temporal order is maintained.\n"
        "- Evaluate the temporal accuracy of the prediction compared to the answer."
    ),
    "consistency": (
        "You are an intelligent chatbot designed for evaluating the consistency of generative outputs for similar "
        "video-based question-answer pairs. "
        "You will be given two very similar questions, a common answer common to both the questions and predicted "
        "answers for the two questions ."
        "Your task is to compare the predicted answers for two very similar question, with a common correct answer "
        "and determine if they are consistent. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the consistency between the two predicted answers and the correct answer. Both predicted "
        "answers should correspond to the correct answer and to each other, and should not contain any "
        "contradictions or significant differences in the conveyed information.\n"
        "- Both predicted answers must be consistent with each other and the correct answer, in terms of the "
        "information they provide about the video content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if they maintain the consistency in the "
        "conveyed information.\n"
        "- Evaluate the consistency of the two predicted answers compared to the correct answer."
    ),
}

# what each criterion's request says of its score (the original's words, its typos in the examples included)
_REQUEST_WORDS = {
    "correctness": dict(what="a factual accuracy", name="factual accuracy", level="factual consistency",
                        value="the factual accuracy score", example="{'score': 4.8}"),
    "detail_orientation": dict(what="a detail orientation", name="detail orientation", level="detail orientation",
                               value="the detail orientation score", example="{''score': 4.8}"),
    "contextual": dict(what="a contextual understanding", name="contextual understanding",
                       level="contextual understanding", value="contextual understanding score",
                       example="{'score': 4.8}"),
    "temporal": dict(what="a temporal accuracy", name="temporal accuracy", level="temporal consistency",
                     value="the temporal accuracy score", example="{''score': 4.8}"),
    "consistency": dict(what="a consistency", name="consistency", level="consistency",
                        value="the consistency score", example="{''score': 4.8}"),
}


def criterion_messages(criterion: str, question: str, answer: str, prediction: str) -> list[dict[str, str]]:
    """The judge's messages scoring ``prediction`` against the correct ``answer`` on one of the first four
    `CRITERIA` (videochatgpt_scoring.py). Raises ValueError for an unknown criterion or ``consistency``."""
    if criterion not in _SYSTEM or criterion == "consistency":
        raise ValueError(f"criterion must be one of {CRITERIA[:4]} (consistency takes two questions), "
                         f"got {criterion!r}")
    user = ("Please evaluate the following video-based question-answer pair:\n\n"
            f"Question: {question}\n"
            f"Correct Answer: {answer}\n"
            f"Predicted Answer: {prediction}\n\n" + _SCORE_REQUEST.format(**_REQUEST_WORDS[criterion]))
    return [{"role": "system", "content": _SYSTEM[criterion]}, {"role": "user", "content": user}]


def consistency_messages(question_1: str, question_2: str, answer: str, prediction_1: str,
                         prediction_2: str) -> list[dict[str, str]]:
    """The judge's messages scoring the consistency of two answers to two paraphrased questions whose correct
    answer is ``answer`` (videochatgpt_scoring.py, ``get_consistency_score``)."""
    user = ("Please evaluate the following video-based question-answer pair:\n\n"
            f"Question 1: {question_1}\n"
            f"Question 2: {question_2}\n"
            f"Correct Answer: {answer}\n"
            f"Predicted Answer to Question 1: {prediction_1}\n"
            f"Predicted Answer to Question 2: {prediction_2}\n\n"
            + _SCORE_REQUEST.format(**_REQUEST_WORDS["consistency"]))
    return [{"role": "system", "content": _SYSTEM["consistency"]}, {"role": "user", "content": user}]


SUMMARY_MAX_TOKENS = 500
"""The original's ``max_tokens`` for a TSU summary (eval_tsu_desc.py)."""


def summary_messages(mega_caption: str) -> list[dict[str, str]]:
    """The messages that ask for one ~300-word description of a whole video from its clips' descriptions joined
    with spaces (``mega_caption``), as eval_tsu_desc.py's ``merge_clip_desc`` asks GPT-3.5."""
    system = ("You are an intelligent chatbot designed for video description and summarization. "
              "Your task is to generate a detailed and cohesive summary based on the provided mega caption of a video. "
              "------"
              "##TASK:"
              "Users will provide a mega caption of a video, and you will generate a detailed summary. "
              "The summary should be a cohesive and well-structured paragraph based on the provided mega caption, "
              "capturing all the actions and objects in approximately 300 words. "
              "------"
              "##INSTRUCTIONS:"
              "- Generate a comprehensive summary of approximately 300 words."
              "- The summary must be a cohesive and detailed version of the provided mega caption."
              "- Combine the information from the mega caption into a single coherent summary, ignoring any "
              "repetitions."
              "- Give more emphasis on the actions, the objects, and the colors of the background and the objects."
              "- Describe the sequence of actions happening in the video and the objects the person interacts with.")
    user = (f"The mega caption of the video is: {mega_caption}. "
            "Please generate a detailed 300-word summary that describes the video content, "
            "focusing on actions, objects, and the environment.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def mcq_parsing_messages(question: str, options: str, prediction: str) -> list[dict[str, str]]:
    """The one user message asking which option letter a free-text answer picks ('Z': none of them), as
    mcq_parsing_llm.py's ``build_prompt`` writes it; ``options`` is ``"(A) text (B) text ..."``."""
    prompt = f'''
You are an AI agent designed to evaluate responses to multiple-choice questions. Your task is to determine the best answer to the following question based on the provided options. You should not explain your answer or provide any additional information, you should only provide the letter of the multiple choice answer that is most similar to the free-form response given to you, start your reply with "The best answer is". If the free-form response is different from all of the provided answers, the letter of the answer should be 'Z'. Here are some examples of your task:

Example 1:
Question: What is the main object in image?
Options: (A) teddy bear (B) rabbit (C) cat (D) dog
Answer: the main object in the image is a cute teddy bear
The best answer is: (A)

Example 2:
Question: What action is being performed by the person in the video?
Options: (A) walking (B) cleaning up (C) drinking from bottle (D) drinking from cup
Answer: the person in the video is seen in the kitchen, holding a cup and drinking from it
The best answer is: (C)

Example 3:
Question: What action will the person perform next?
Options: (A) sit down (B) stand up (C) walk to the door (D) walk to the window
Answer: the person is in the kitchen and holding a cup, they will most likely walk to the fridge to get some milk
The best answer is: (Z)

Example 4:
Question: Given that the person in the video "walked to the kitchen" and then "picked up the dirty plate", what action are they most likely to perform next?
Options: (A) leave the kitchen (B) walk to the sink (C) start cooking eggs (D) turn on the stove
Answer: seeing as how the person walked to the kitchen and then picked up the dirty plate, the most likely action they will perform next is to walk to the sink to wash the plate. This is because there is a sink behind them and their intention seems to be to clean the plate.
The best answer is: (B)
-----------------------------------------

Your task is to evaluate the following question and provide the best answer based on the options provided. You should not provide any additional information or explanation, only the letter of the multiple choice answer that is most similar to the free-form response given to you.
Question: {question}
Options: {options}
Answer: {prediction}
Please complete the following: The best answer is:
    '''  # noqa: E501 - the original's text, line for line
    return [{"role": "user", "content": prompt}]
