"""Reference-based scores of generated descriptions that need no judge: deterministic, from two libraries.

- BLEU-4 and chrF over the whole corpus, with sacrebleu's defaults (BLEU: 13a tokenisation, 4-grams,
  exponential smoothing; chrF: character 6-grams, beta 2), each with its sacrebleu signature for reproducibility;
- ROUGE-L F1 per item with Google's ``rouge-score`` (Porter stemming, its own tokeniser, so no NLTK data is
  downloaded), averaged with a seeded 95% bootstrap interval.

All three are on a 0-100 scale. METEOR (NLTK's needs the WordNet data at run time) and BERTScore (a model) are
left out on purpose. Raises `LlavidalError` with the install line when the libraries are missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from llavidal_core.errors import LlavidalError
from llavidal_core.evaluation.score_statistics import bootstrap_mean

METRICS = ("bleu4", "chrf", "rougeL_f1")


def _libraries():
    try:
        import sacrebleu
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise LlavidalError(f"reference metrics need sacrebleu and rouge-score ({exc.name} is missing): "
                            "pip install 'llavidal-core[eval]'") from None
    return sacrebleu, rouge_scorer


def reference_scores(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """``{"bleu4": {"score", "signature"}, "chrf": {"score", "signature"}, "rougeL_f1": {"mean", "ci95", "n"}}``
    of ``predictions`` against one reference each. Raises ValueError when the two lengths differ or are 0."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    sacrebleu, rouge_scorer = _libraries()
    hypotheses, refs = [str(p) for p in predictions], [[str(r) for r in references]]
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu, chrf = bleu_metric.corpus_score(hypotheses, refs), chrf_metric.corpus_score(hypotheses, refs)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [100 * scorer.score(reference, prediction)["rougeL"].fmeasure
             for prediction, reference in zip(hypotheses, refs[0])]
    return {"bleu4": {"score": bleu.score, "signature": str(bleu_metric.get_signature())},
            "chrf": {"score": chrf.score, "signature": str(chrf_metric.get_signature())},
            "rougeL_f1": bootstrap_mean(rouge).to_dict()}
