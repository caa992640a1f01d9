"""`Llavidal`: lmms-eval's model ``llavidal``, a llavidal model answering lmms-eval requests.

``lmms-eval --model llavidal --model_args pretrained=MODEL[,device=cuda][,dtype=bfloat16][,max_new_tokens=256]
[,cue_fields=pose:skeleton_path] --tasks ...`` loads MODEL (a folder or Hub id) with
`LlavidalPipeline.from_pretrained`, with the encoders of all its cues. Each request's video (its task's
``doc_to_visual``) feeds every cue of the model that reads video files; other cues read the doc's fields
(`llavidal_lmms_eval.requests`).

- ``generate_until``: the context is the question, asked as the pipeline asks it (question, then the cues'
  placeholders, in the model's inference template); batches of ``--batch_size`` requests with equal
  ``gen_kwargs``.
- ``loglikelihood``: the continuation is scored as the answer (`llavidal_lmms_eval.scoring`). Each value is
  the continuation's mean negative log-likelihood per token (the LM loss, lower is likelier), as lmms-eval's
  own LLaVA, LLaVA-Video and LLaVA-OneVision models return it: lmms-eval's ``multiple_choice`` scoring picks
  the choice with the *lowest* value (``np.argmin``), and so do the video ``*_mcppl`` tasks (EgoSchema,
  WorldQA). Each video's features are computed once for all its choices. lmms-eval 0.7.3's evaluator
  passes every response through ``unwrap_generation_output``, which turns a ``(float, bool)`` pair into its
  ``str()``, and its ``multiple_choice`` scoring then fails ("too many values to unpack"); where the
  installed lmms-eval does that, the pairs are handed over as the ``text`` of a ``GenerationResult``,
  which it passes on unchanged (`lmms_eval_response`).
- ``generate_until_multi_round``: each round is one question to the pipeline, the task's ``doc_to_text``
  writing the next round's context from the answers so far.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
from lmms_eval.api.model import lmms
from tqdm import tqdm

from llavidal_core.devices import choose_device
from llavidal_core.inference import LlavidalPipeline
from llavidal_lmms_eval.requests import cue_inputs, generation_settings, parse_cue_fields, video_path
from llavidal_lmms_eval.scoring import continuation_scores

logger = logging.getLogger(__name__)

# whether the installed lmms-eval's evaluator turns a loglikelihood pair into a string (0.7.3 does)
PAIRS_STRINGIFIED = unwrap_generation_output((0.0, True))[0] != (0.0, True)


def lmms_eval_response(pair: tuple[float, bool]) -> tuple[float, bool] | GenerationResult:
    """A loglikelihood pair as the installed lmms-eval's evaluator hands it to the task unchanged: the pair
    itself, or, where the evaluator would stringify it (`PAIRS_STRINGIFIED`), a ``GenerationResult`` whose
    ``text`` is the pair (``unwrap_generation_output`` returns ``text`` as it is)."""
    return GenerationResult(text=pair) if PAIRS_STRINGIFIED else pair


class Llavidal(lmms):
    """A llavidal model in lmms-eval (a "simple" model: requests carry text contexts and ``doc_to_visual``).

    Args (lmms-eval's ``--model_args``, and its ``--batch_size``/``--device``):
        pretrained: the model folder or Hub id (required).
        device: ``cpu``, ``cuda``, ``cuda:1``...; by default this process's GPU (``LOCAL_RANK``) or the CPU.
        dtype: ``float32``, ``bfloat16``, ``float16``; by default bfloat16/float16 on a GPU, float32 on a CPU.
        batch_size: requests per forward pass (an integer; ``auto`` is not supported).
        max_new_tokens: the answer length when a task's ``generation_kwargs`` set none.
        cue_fields: ``CUE:FIELD`` pairs separated by ``;``, the doc field holding a cue's input.

    Raises:
        ValueError: an unknown argument or a batch size that is not a positive integer.
        LlavidalError: the model cannot be loaded (see `LlavidalPipeline.from_pretrained`).
    """

    is_simple = True

    def __init__(self, pretrained: str, device: str | None = None, dtype: str | None = None,
                 batch_size: int | str = 1, max_new_tokens: int = 256, cue_fields: str | None = None,
                 max_batch_size: int | None = None, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            raise ValueError(f"unknown model_args for llavidal: {sorted(unknown)} (known: pretrained, device, dtype, "
                             f"batch_size, max_new_tokens, cue_fields)")
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise ValueError(f"llavidal takes a positive integer batch size, got {batch_size!r}")
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.cue_fields = parse_cue_fields(cue_fields)
        self._device = choose_device(device, int(os.environ.get("LOCAL_RANK", 0)))
        self.pipeline = LlavidalPipeline.from_pretrained(str(pretrained), device=str(self._device), dtype=dtype)
        unknown_cues = sorted(set(self.cue_fields) - set(self.pipeline.cue_names))
        if unknown_cues:
            raise ValueError(f"cue_fields names cues {unknown_cues} that the model does not have "
                             f"(its cues: {list(self.pipeline.cue_names)})")
        self._reported: set[tuple[str, str]] = set()
        logger.info("llavidal model %s on %s: cues %s, video cues %s", pretrained, self._device,
                    list(self.pipeline.cue_names), list(self.pipeline.video_cues()))

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # -- the inputs of one request ---------------------------------------------------------------------------

    def _report_once(self, key: tuple[str, str], message: str, *args: Any) -> None:
        if key not in self._reported:
            self._reported.add(key)
            logger.warning(message, *args)

    def _doc(self, task: str, split: str, doc_id: int) -> Mapping[str, Any]:
        return self.task_dict[task][split][doc_id]

    def _cue_inputs(self, visuals: Any, doc: Mapping[str, Any], task: str, split: str, doc_id: int
                    ) -> dict[str, Any]:
        video = video_path(visuals, f"{task}/{split} doc {doc_id}")
        inputs = cue_inputs(video, doc, self.pipeline.cue_names, self.pipeline.video_cues(), self.cue_fields)
        for cue in self.pipeline.cue_names:
            if cue not in inputs:
                self._report_once((task, cue), "task %s: docs without an input for the cue %r are asked without "
                                  "it (give it a video, or a doc field: cue_fields=%s:FIELD)", task, cue, cue)
        return inputs

    def _request_inputs(self, doc_to_visual, doc_id: int, task: str, split: str) -> dict[str, Any]:
        doc = self._doc(task, split, doc_id)
        return self._cue_inputs(doc_to_visual(doc), doc, task, split, doc_id)

    def _settings(self, task: str, gen_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        settings, ignored = generation_settings(gen_kwargs, self.max_new_tokens)
        if ignored:
            self._report_once((task, "gen_kwargs"), "task %s: generation_kwargs %s are not llavidal's and are "
                              "ignored", task, ignored)
        return settings

    def _message(self, context: str, features: Mapping[str, torch.Tensor]) -> str:
        """The user turn: the context then the placeholders of the cues present (only those, for no context)."""
        if context.strip():
            return self.pipeline.user_message(context, features)
        return "".join(spec.placeholder for spec in self.pipeline.processor.cues if spec.name in features)

    # -- lmms-eval's requests --------------------------------------------------------------------------------

    def generate_until(self, requests) -> list[str]:
        """Answer each request's context about its doc's inputs; batches share their ``gen_kwargs``."""
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(index)
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="llavidal generate_until")
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                args = [requests[i].args for i in chunk]
                settings = self._settings(args[0][4], args[0][1])
                inputs = [self._request_inputs(visual, doc_id, task, split)
                          for _, _, visual, doc_id, task, split in args]
                texts = self.pipeline(question=[a[0] for a in args], inputs=inputs, **settings)
                for i, text in zip(chunk, texts):
                    answers[i] = text
                progress.update(len(chunk))
        progress.close()
        return answers

    def loglikelihood(self, requests) -> list[tuple[float, bool] | GenerationResult]:
        """``(mean negative log-likelihood per token, is_greedy)`` of each continuation, as
        `lmms_eval_response` wraps it (module docstring)."""
        entries = []  # (context, continuation, inputs)
        for request in requests:
            context, continuation = request.args[0], request.args[1]
            inputs: dict[str, Any] = {}
            if len(request.args) >= 6:  # not an unconditional (acc_mutual_info) request
                doc_to_visual, doc_id, task, split = request.args[2:6]
                doc = self._doc(task, split, doc_id)
                if callable(continuation):  # output_type loglikelihood passes doc_to_target itself
                    continuation = continuation(doc)
                inputs = self._cue_inputs(doc_to_visual(doc), doc, task, split, doc_id)
            entries.append((context, str(continuation).strip(), inputs))
        keys = [tuple(sorted((cue, str(value)) for cue, value in inputs.items())) for _, _, inputs in entries]
        first_seen = {key: index for index, key in reversed(list(enumerate(keys)))}
        order = sorted(range(len(entries)), key=lambda index: first_seen[keys[index]])  # one doc's choices together
        results: list[tuple[float, bool] | None] = [None] * len(entries)
        features: dict[tuple, dict[str, torch.Tensor]] = {}  # the current batch's, so a video is encoded once
        progress = tqdm(total=len(entries), disable=self.rank != 0, desc="llavidal loglikelihood")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            needed = list(dict.fromkeys(keys[i] for i in chunk))
            missing = [key for key in needed if key not in features]
            computed = self.pipeline.compute_features([entries[first_seen[key]][2] for key in missing])
            features = {key: features[key] for key in needed if key in features} | dict(zip(missing, computed))
            chunk_features = [features[keys[i]] for i in chunk]
            scores = continuation_scores(self.pipeline.model, self.pipeline.processor,
                                         [self._message(entries[i][0], f) for i, f in zip(chunk, chunk_features)],
                                         [entries[i][1] for i in chunk], chunk_features)
            for i, score in zip(chunk, scores):
                results[i] = score
            progress.update(len(chunk))
        progress.close()
        return [lmms_eval_response(pair) for pair in results]

    def generate_until_multi_round(self, requests) -> list[list[str]]:
        """Each request's answers, one per round; rounds after the first come from the task's ``doc_to_text``
        (``doc, previous_output, round_idx, previous_round_info`` -> ``visuals, context, terminal, round
        results, round info``), which ends the conversation by returning ``terminal`` true."""
        results = []
        for request in tqdm(requests, disable=self.rank != 0, desc="llavidal generate_until_multi_round"):
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = request.args
            settings = self._settings(task, gen_kwargs)
            doc = self._doc(task, split, doc_id)
            visuals, rounds, info, round_index = doc_to_visual(doc), [], None, 0
            while True:
                if round_index:
                    visuals, context, terminal, rounds, info = doc_to_text(
                        doc, previous_output=list(rounds), round_idx=round_index, previous_round_info=info)
                    rounds = list(rounds)
                    if terminal:
                        break
                inputs = self._cue_inputs(visuals, doc, task, split, doc_id)
                rounds.append(self.pipeline(question=context, inputs=inputs, **settings))
                round_index += 1
            results.append(rounds)
        return results
