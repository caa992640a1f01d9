"""From free-text answers ("a cup, a table and a person") to a clean object vocabulary (["cup", "table"]).

BLIP-2 answers "what objects are in the image?" with short noun phrases glued by commas, "and", prepositions
and the odd verb. `parse_object_answer` cuts an answer at those glue words, drops lead-ins ("there is",
"the image shows"), determiners, numbers and a few colour/size adjectives, singularises the last word and
removes people, body parts and scene words (wall, floor, room...). `build_vocabulary` merges the answers of
several keyframes, most frequent first, minus a user stop-list. `split_user_tags` reads ``--tags a,b,c``.
No NLP library is needed; the rules are plain word lists, tested on realistic answers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

MAX_WORDS_PER_TAG = 3

LEAD_INS = (
    "the objects in the image are", "the objects in this image are", "objects in the image are",
    "the objects are", "objects are", "the image shows", "this image shows", "the picture shows", "it shows",
    "there is", "there are", "there's", "i see", "i can see", "we can see", "you can see", "it is", "it's",
    "this is", "these are", "they are", "a picture of", "a photo of", "an image of", "a close up of",
    "a close-up of", "a view of",
)

GLUE_WORDS = frozenset("""
    and or with without on onto in into inside at by near next beside behind under underneath over above below
    to from of for while is are was were be being been has have had as that which who where what then
    also but plus
""".split())

DROPPED_WORDS = frozenset("""
    a an the some any this that these those his her their its my your our one two three four five six seven
    eight nine ten several many few lots lot both each every other another various different small large
    big little tiny huge long short tall old new white black red blue green yellow orange pink purple brown
    gray grey silver gold wooden plastic metal empty full open closed dark bright clean dirty
    round square left right front back top bottom side
""".split())

PERSON_WORDS = frozenset("""
    person people man men woman women boy boys girl girls child children kid kids baby babies lady ladies guy
    guys someone somebody human humans he she they him them i me we you individual adult adults player
    hand hands arm arms face head leg legs foot feet finger fingers body hair eye eyes mouth tooth
""".split())

SCENE_WORDS = frozenset("""
    background foreground wall walls floor floors ceiling room rooms kitchen bedroom bathroom office house home
    building street outside inside indoors outdoors scene view image images picture photo photograph video
    frame area space place corner ground sky air it thing things object objects item items something nothing
    anything everything stuff
""".split())

PAIR_WORDS = frozenset("pair pairs piece pieces set sets bunch bunches couple number group kind type sort".split())

ING_NOUNS = frozenset("""
    painting paintings clothing building ring rings string strings ceiling bedding sling stuffing railing
    wedding pudding icing dumpling dumplings
""".split())

INVARIANT_PLURALS = frozenset("""
    glasses scissors clothes pants jeans shorts trousers headphones earphones tongs pliers binoculars news
    series species chess
""".split())
IRREGULAR_PLURALS = {
    "knives": "knife", "shelves": "shelf", "leaves": "leaf", "loaves": "loaf", "mice": "mouse",
    "potatoes": "potato", "tomatoes": "tomato", "teeth": "tooth", "geese": "goose",
}

_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
_SENTENCE_END = re.compile(r"[.;:!?\n]+")


def singularize(word: str) -> str:
    """The singular of a plural English noun, by simple rules (``cups`` → ``cup``, ``boxes`` → ``box``)."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in INVARIANT_PLURALS or len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zzes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _strip_lead_ins(sentence: str) -> str:
    changed = True
    while changed:
        changed = False
        for lead_in in LEAD_INS:
            if sentence == lead_in or sentence.startswith(lead_in + " "):
                sentence = sentence[len(lead_in):].strip()
                changed = True
    return sentence


def _phrases(sentence: str) -> list[list[str]]:
    """Split one sentence into runs of words at glue words and -ing verbs.

    ``X of Y`` keeps X ("a cup of coffee" → cup), except after a quantity word ("a pair of scissors" → scissors)
    or a position ("in front of a mirror" → mirror).
    """
    phrases: list[list[str]] = [[]]
    skipping = False  # inside the "of Y" part of "X of Y"
    for word in _WORD.findall(sentence):
        if word == "of":
            head = phrases[-1]
            if not head or head[-1] in PAIR_WORDS or all(w in DROPPED_WORDS for w in head):  # "in front of"
                phrases[-1] = []
            else:
                skipping = True
            continue
        if word in GLUE_WORDS or (word.endswith("ing") and word not in ING_NOUNS):
            skipping = False
            phrases.append([])
            continue
        if not skipping:
            phrases[-1].append(word)
    return [phrase for phrase in phrases if phrase]


def _clean_phrase(words: list[str], excluded: frozenset[str]) -> str | None:
    words = [w for w in words if w not in DROPPED_WORDS and not w.isdigit()]
    words = [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]  # "cup cup cup" (a stuck decoder)
    if not words:
        return None
    words = words[-MAX_WORDS_PER_TAG:]
    words[-1] = singularize(words[-1])
    if any(w in PERSON_WORDS or w in SCENE_WORDS for w in words[-1:]):
        return None
    tag = " ".join(words)
    if tag in excluded or words[-1] in excluded:
        return None
    return tag


def parse_object_answer(answer: str, stop_words: Iterable[str] = ()) -> list[str]:
    """The object names in one free-text answer, in order of appearance, without repeats.

    ``stop_words`` are further tags (or head nouns) to drop, e.g. ``{"table", "chair"}``.
    """
    excluded = frozenset(normalize_tag(w) for w in stop_words)
    tags: list[str] = []
    for sentence in _SENTENCE_END.split(answer.lower().replace("_", " ")):
        sentence = " ".join(sentence.replace(",", " , ").split())
        for clause in sentence.split(" , "):
            for phrase in _phrases(_strip_lead_ins(clause.strip(" ,"))):
                tag = _clean_phrase(phrase, excluded)
                if tag is not None and tag not in tags:
                    tags.append(tag)
    return tags


def build_vocabulary(answers: Iterable[str], stop_words: Iterable[str] = (), max_tags: int | None = None) -> list[str]:
    """The object vocabulary of several answers: tags by how many answers name them, then first appearance."""
    stop_words = list(stop_words)
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for answer in answers:
        for tag in parse_object_answer(answer, stop_words):
            counts[tag] += 1
            first_seen.setdefault(tag, len(first_seen))
    ranked = sorted(counts, key=lambda tag: (-counts[tag], first_seen[tag]))
    return ranked if max_tags is None else ranked[:max_tags]


def normalize_tag(tag: str) -> str:
    """Lower-case, single-spaced, without surrounding punctuation: ``" Coffee  Mug."`` → ``"coffee mug"``."""
    return " ".join(_WORD.findall(tag.lower().replace("_", " ")))


def split_user_tags(text: str | Iterable[str], stop_words: Iterable[str] = ()) -> list[str]:
    """Tags given by the user (``"cup, phone,cup"`` or a list) as a clean, de-duplicated list; no word rules apply.

    Raises ValueError when nothing is left, so ``--tags ,`` is reported instead of silently finding nothing.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    excluded = {normalize_tag(w) for w in stop_words}
    tags = list(dict.fromkeys(t for t in (normalize_tag(item) for item in items) if t and t not in excluded))
    if not tags:
        raise ValueError(f"no object tags in {text!r}: give names separated by commas, e.g. 'cup,phone'")
    return tags
