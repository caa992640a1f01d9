"""Reading the chosen letter out of free-text answers (``eval mcq --mode generate``): explicit answers first,
never an article or a word, "no answer" (None) rather than a guess."""

import pytest

from llavidal_core.evaluation.mcq_answers import parse_choice_letter

CHOICES = {"A": "wave", "B": "clap", "C": "pick up a book", "D": "sit down"}

ANSWERS = [
    # explicit final answers win over every other letter named
    ("Option (A) is wrong, the correct answer is (B).", "B"),
    ("The answer is (A). No, wait: the answer is (B).", "B"),
    ("**Answer: C**", "C"),
    ("Answer - d", "D"),
    ("the answer is b", "B"),
    ("The correct answer is: (a) wave", "A"),
    ("The answer is A because the person waves.", "A"),
    ("The answer is B because the person claps.", "B"),
    ("I would choose option C since a book is picked up.", "C"),
    ("Option: (A)", "A"),
    ("The answer is E.", None),  # a letter the question does not have
    ("(Z) nothing", None),
    # two choices offered together, or the option list repeated back, are no answer
    ("A) wave B) clap C) pick up a book D) sit down", None),
    ("A. wave\nB. clap\nC. pick up a book\nD. sit down", None),
    ("(A) wave (B) clap (C) pick up a book (D) sit down", None),
    ("Both A and B", None),
    ("The answer is A and B", None),
    ("Either A or D", None),
    ("Answer: B, C", None),
    ("The answer is B or C.", None),
    ("A) wave B) clap. The answer is B.", "B"),
    # an article, a pronoun or the "s" of "it's" is never a letter
    ("The answer is a book, so C.", "C"),
    ("A person is waving at the camera.", None),
    ("I think it's D", "D"),
    ("i think it's d.", "D"),
    ("I'm not sure what the person is doing.", None),
    # letters standing alone
    ("(B) clap", "B"),
    ("B", "B"),
    ("b.", "B"),
    ("a) wave", "A"),
    ("D. The person sits down on the sofa.", "D"),
    ("The person sits down, not A.", None),
    ("The answer isn't A, it's B", "B"),
    ("Choices (A) and (B) both seem possible here.", None),
    ("It is C, because the book is lifted.", "C"),
    # the option's text, only when exactly one option's text occurs
    ("The person is going to sit down.", "D"),
    ("They pick up a book.", "C"),
    ("I think they clap.", "B"),
    ("They wave or clap.", None),
    ("The person claps.", None),  # "clap" is not a word of this answer: no guessing by stems
    ("", None),
]


@pytest.mark.parametrize("answer, expected", ANSWERS)
def test_reads_the_letter_an_answer_picks(answer, expected):
    assert parse_choice_letter(answer, CHOICES) == expected


@pytest.mark.parametrize("answer, expected",
                         [("They sit down.", "B"), ("They sit.", "A"), ("They sit, then sit down.", None)])
def test_an_option_inside_a_longer_option_counts_only_on_its_own(answer, expected):
    assert parse_choice_letter(answer, {"A": "sit", "B": "sit down", "C": "stand up"}) == expected
