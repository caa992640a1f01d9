"""Bootstrap accuracy: exact means, sensible and reproducible intervals, the Markdown table."""

import pytest

from llavidal_core.evaluation.accuracy import accuracy_report, bootstrap_accuracy, markdown_table


def test_accuracy_and_interval():
    result = bootstrap_accuracy([True] * 80 + [False] * 20)
    assert result.accuracy == 0.8 and result.n == 100
    low, high = result.ci95
    assert 0.70 <= low < 0.8 < high <= 0.88  # the binomial 95% interval is about 0.72-0.88
    assert bootstrap_accuracy([True] * 80 + [False] * 20) == result  # seeded


def test_all_right_has_a_degenerate_interval():
    assert bootstrap_accuracy([True] * 10).ci95 == (1.0, 1.0)


def test_empty_is_an_error():
    with pytest.raises(ValueError, match="no answers"):
        bootstrap_accuracy([])


def test_report_per_task_and_overall():
    report = accuracy_report({"lemma": [True, False], "charades": [True, True, True, False]})
    assert list(report) == ["lemma", "charades", "overall"]
    assert report["overall"].accuracy == pytest.approx(4 / 6) and report["overall"].n == 6
    table = markdown_table(report)
    assert table.splitlines()[0] == "| task | accuracy | 95% CI | n |"
    assert "| charades | 0.750 |" in table
    assert report["lemma"].to_dict()["ci95"] == list(report["lemma"].ci95)
