"""Judge-free reference metrics and the bootstrap mean."""

import pytest

from llavidal_core.evaluation.reference_metrics import reference_scores
from llavidal_core.evaluation.score_statistics import bootstrap_mean

REFERENCES = ["The person opens the fridge and takes out a bottle of milk.",
              "A man sits on the sofa, then reads a book under the lamp."]


def test_identical_descriptions_score_100():
    scores = reference_scores(REFERENCES, REFERENCES)
    assert scores["bleu4"]["score"] == pytest.approx(100) and scores["chrf"]["score"] == pytest.approx(100)
    assert scores["rougeL_f1"] == {"mean": pytest.approx(100), "ci95": [pytest.approx(100)] * 2, "n": 2}
    assert scores["bleu4"]["signature"].startswith("nrefs:1|") and "tok:13a" in scores["bleu4"]["signature"]


def test_scores_order_better_and_worse_descriptions():
    close = ["The person opens the fridge and takes out milk.", "A man sits on a sofa and reads a book."]
    far = ["Someone is dancing outside in the rain.", "The cat jumps onto the table."]
    good, bad = reference_scores(close, REFERENCES), reference_scores(far, REFERENCES)
    for metric in ("bleu4", "chrf"):
        assert 0 <= bad[metric]["score"] < good[metric]["score"] < 100
    assert bad["rougeL_f1"]["mean"] < good["rougeL_f1"]["mean"] < 100
    assert reference_scores(close, REFERENCES) == good  # deterministic


def test_reference_scores_need_pairs():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        reference_scores(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        reference_scores([], [])


def test_bootstrap_mean():
    estimate = bootstrap_mean([1, 2, 3, 4, 5])
    assert estimate.mean == 3 and estimate.n == 5
    assert 1 <= estimate.ci95[0] < 3 < estimate.ci95[1] <= 5
    assert bootstrap_mean([1, 2, 3, 4, 5]) == estimate  # seeded
    assert bootstrap_mean([4, 4]).ci95 == (4, 4)
    with pytest.raises(ValueError, match="no scores"):
        bootstrap_mean([])
