"""The two-round task's functions (lmms-eval loads them with ``!function utils.NAME``).

Round 1 asks the doc's question; round 2 asks `follow_up` of the first answer; then the conversation ends.
A doc scores 1 when both answers equal its ``answers``.
"""


def follow_up(doc, first_answer):
    """The second round's question, written from the first round's answer."""
    return f"You said {first_answer!r}. {doc['question']}"


def rounds_doc_to_text(doc, lmms_eval_specific_kwargs=None, previous_output=None, round_idx=None,
                       previous_round_info=None):
    """The first context (no ``round_idx``), or ``(visuals, context, terminal, round results, round info)``."""
    if round_idx is None:
        return doc["question"]
    if round_idx == 1:
        return [doc["video"]], follow_up(doc, previous_output[0]), False, previous_output, None
    return None, None, True, previous_output, None


def rounds_process_results(doc, results):
    """``results[0]``: the doc's answers, one per round."""
    return {"rounds_match": float(list(results[0]) == list(doc["answers"]))}
