"""The cue tokens a tokenizer gets, in the order that fixes their ids.

For the cues in config order, every patch token is added first, then every start/end pair (when start/end
tokens are used), all as special tokens. This is the seed's order: on its 32003-token base, LLAVIDAL's
``<vid_patch>, <object_patch>, <pose_patch>`` get 32003-32005 and ``<vid_start>, <vid_end>, <object_start>,
<object_end>, <pose_start>, <pose_end>`` get 32006-32011; Video-ChatGPT's ``<vid_patch>, <vid_start>,
<vid_end>`` get 32003-32005. Placeholders (``<video>``, ...) never enter the vocabulary: the processor
expands them into these tokens' ids.
"""

from __future__ import annotations

from typing import Any, Sequence

from llavidal_core.cues import CueSpec


def cue_token_groups(cues: Sequence[CueSpec], use_start_end: bool) -> tuple[list[str], list[str]]:
    """The patch tokens, then the start/end tokens (empty without start/end), each in cue order."""
    patches = [spec.patch_token for spec in cues]
    bounds: list[str] = []
    if use_start_end:
        for spec in cues:
            if not spec.uses_start_end:
                raise ValueError(f"cue {spec.name!r} has no start/end tokens, but use_start_end is set")
            bounds += [spec.start_token, spec.end_token]
    return patches, bounds


def cue_token_ids_for_appended_rows(cues: Sequence[CueSpec], use_start_end: bool,
                                    first_id: int) -> dict[str, dict[str, int | None]]:
    """The ids the cue tokens get when appended, in add order, to a vocabulary of ``first_id`` tokens."""
    patches, bounds = cue_token_groups(cues, use_start_end)
    position = {token: first_id + index for index, token in enumerate(patches + bounds)}
    return _ids_by_cue(cues, use_start_end, position.__getitem__)


def add_cue_tokens(tokenizer: Any, cues: Sequence[CueSpec], use_start_end: bool) -> dict[str, dict[str, int | None]]:
    """Add the cue tokens to ``tokenizer`` (special, in the fixed order); return ``{cue: {patch, start, end}}``.

    Tokens the tokenizer already has keep their ids, so calling this twice changes nothing.
    """
    patches, bounds = cue_token_groups(cues, use_start_end)
    for group in (patches, bounds):
        if group:
            tokenizer.add_tokens(group, special_tokens=True)
    return _ids_by_cue(cues, use_start_end, tokenizer.convert_tokens_to_ids)


def _ids_by_cue(cues, use_start_end, token_id) -> dict[str, dict[str, int | None]]:
    return {
        spec.name: {
            "patch": token_id(spec.patch_token),
            "start": token_id(spec.start_token) if use_start_end else None,
            "end": token_id(spec.end_token) if use_start_end else None,
        }
        for spec in cues
    }
