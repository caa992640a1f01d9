"""Reading which choice a free-text answer picks (``llavidal eval mcq --mode generate``), by fixed rules.

`parse_choice_letter` returns a letter only when the answer says it plainly, else None ("no answer"), never a
guess. In order:

1. an explicit answer statement, the last one wins: "the answer is (B)", "Answer: b", "correct option is C",
   "I would choose B", "the answer is B because ..."; a letter the choices lack there is no answer;
2. letters standing alone: "(B)", "B)", "B.", a final "... so C." or "I think it's D", a whole answer "b";
   one named "not A" / "A is wrong" does not count. The letters at the start and at the end of the answer
   decide, else the only letter named; two different letters are no answer;
3. the text of exactly one option, as whole words ("They clap." picks "clap"); an option whose every
   occurrence lies inside a longer option's ("sit" in "sit down") does not count.

A letter is never read from a word: the article in "a book" / "A person", the pronoun in "I think", the "s"
of "it's". A lower-case letter counts only where nothing but punctuation follows it ("b.", "(b)", "b)").
Two choices offered together ("A and B", "B or C", "Answer: B, C") are no answer, wherever they stand, and
so is the option list repeated back ("A) drinks water B) reads a book ...") without a stated answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# "(B)" / "( b )", or a single letter that is not part of a word (nor of "it's")
_LETTER = re.compile(r"(?<![\w'’])(?:\(\s*(?P<paren>[A-Za-z])\s*\)|(?P<bare>[A-Za-z])(?![\w'’]))")
_STATEMENT = re.compile(
    r"\b(?:answer|choice|option)\s*(?:(?:is|would be|will be|should be|must be)\b\s*[:\-]?|[:=\-])\s*"
    r"(?:(?:option|choice|letter)\s*)?"
    r"|\b(?:choose|chose|pick|select|go with|going with)\s+(?:(?:option|choice)\s*)?",
    re.IGNORECASE,
)
_PUNCTUATION_NEXT = re.compile(r"\s*(?:$|[^\w\s'’])")
# words after which an upper-case "A" or "I" is still a letter: "the answer is A because ..."
_CONNECTIVE_NEXT = re.compile(r"\s+(?:because|since|as|which|for|so)\b|\s*[-–—]", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(r"(?:\bnot|n't|n’t)\s*$", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"\s*(?:is|are|was|seems)\s+(?:wrong|incorrect|false|not\b|unlikely)", re.IGNORECASE)
_MARKUP = re.compile(r"[*`]")
_ALTERNATIVES = re.compile(
    r"(?<![\w'’])\(?\s*(?P<first>[A-Z])\s*\)?\s*(?:,|/|&|\band\b|\bor\b|\band/or\b)\s*\(?\s*(?P<second>[A-Z])\s*\)?"
    r"(?![\w'’])")
_OPTION_MARKER = re.compile(r"(?<![\w'’])\(?(?P<letter>[A-Z])\s*[).:]\s*")


def offers_alternatives(answer: str, choices: Mapping[str, str]) -> bool:
    """Whether ``answer`` offers two different choice letters together ("A and B", "B or C", "B, C")."""
    return any(match.group("first") != match.group("second") and match.group("first") in choices
               and match.group("second") in choices for match in _ALTERNATIVES.finditer(answer))


def repeats_the_options(answer: str, choices: Mapping[str, str]) -> bool:
    """Whether ``answer`` lists two or more choices with their own text ("A) drinks water B) reads a book")."""
    listed = {match.group("letter") for match in _OPTION_MARKER.finditer(answer)
              if match.group("letter") in choices and choices[match.group("letter")].strip()
              and answer[match.end():].lower().startswith(choices[match.group("letter")].strip().lower())}
    return len(listed) >= 2


def _letter_at(text: str, match: re.Match, choices: Mapping[str, str]) -> str | None:
    """The letter ``match`` (of `_LETTER`) names, or None when it is a word such as an article or a pronoun."""
    if match.group("paren"):
        return match.group("paren").upper()
    letter, rest = match.group("bare"), text[match.end():]
    if _PUNCTUATION_NEXT.match(rest):
        return letter.upper()
    if not letter.isupper():
        return None
    if letter not in ("A", "I"):
        return letter
    option = choices.get(letter, "").strip().lower()
    named = bool(option) and rest.lstrip().lower().startswith(option)
    return letter if named or _CONNECTIVE_NEXT.match(rest) else None


def stated_letter(answer: str, choices: Mapping[str, str]) -> str | None:
    """The letter of the last explicit answer statement ("the answer is (B)", "I choose C"), or None."""
    stated = None
    for statement in _STATEMENT.finditer(answer):
        letter = _LETTER.match(answer, statement.end())
        if letter is not None:
            stated = _letter_at(answer, letter, choices) or stated
    return stated


def named_letters(answer: str, choices: Mapping[str, str]) -> list[tuple[str, int, int]]:
    """``(letter, start, end)`` of each choice letter standing alone in ``answer`` and not named as wrong."""
    named = []
    for match in _LETTER.finditer(answer):
        letter = _letter_at(answer, match, choices)
        if letter is None or letter not in choices:
            continue
        if _NEGATED_BEFORE.search(answer[: match.start()]) or _NEGATED_AFTER.match(answer, match.end()):
            continue
        named.append((letter, match.start(), match.end()))
    return named


def letter_from_named(answer: str, named: list[tuple[str, int, int]]) -> str | None:
    """The one letter named at the start or the end of ``answer`` (else named at all), or None when two differ."""
    at_edges = {letter for letter, start, end in named
                if not answer[:start].strip(" \t\n([{\"'") or not re.sub(r"\W", "", answer[end:])}
    candidates = at_edges or {letter for letter, _, _ in named}
    return candidates.pop() if len(candidates) == 1 else None


def _occurrences(text: str, phrase: str) -> list[tuple[int, int]]:
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text, re.IGNORECASE)]


def option_named_by_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """The letter of the one option whose text the answer contains as whole words, or None."""
    found = {letter: _occurrences(answer, text) for letter, text in choices.items() if text.strip()}
    found = {letter: spans for letter, spans in found.items() if spans}
    spans = [(start, end) for letter_spans in found.values() for start, end in letter_spans]
    standing = [letter for letter, letter_spans in found.items()
                if any(not any(s <= start and end <= e and (s, e) != (start, end) for s, e in spans)
                       for start, end in letter_spans)]
    return standing[0] if len(standing) == 1 else None


def parse_choice_letter(answer: str, choices: Mapping[str, str]) -> str | None:
    """The letter (a key of ``choices``) that ``answer`` picks, by the module's rules; None for no answer."""
    text = _MARKUP.sub("", answer or "")
    if offers_alternatives(text, choices):
        return None
    if _STATEMENT.search(text):
        stated = stated_letter(text, choices)
        if stated is not None:
            return stated if stated in choices else None
    if repeats_the_options(text, choices):
        return None
    named = named_letters(text, choices)
    if named:
        return letter_from_named(text, named)
    return option_named_by_text(text, choices)
