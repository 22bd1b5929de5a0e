"""Batch calibration's arithmetic (evokd.teacher.calibration); the loop's use of it is tested in
test_strategies.py (pool runs with a TEST DOUBLE teacher that favours one label) and its effect on the
embedded teacher's labels is measured in benchmarks/teacher_calibration.md."""

import pytest

from evokd.teacher.calibration import MIN_DISTRIBUTIONS, calibrate, describe_prior, mean_distribution

LABELS = ["DESC", "ENTY", "NUM"]


def test_the_mean_skips_unknown_distributions_and_needs_enough_of_them():
    known = [{"DESC": 0.8, "ENTY": 0.1, "NUM": 0.1}, {"DESC": 0.4, "ENTY": 0.5, "NUM": 0.1}]
    many = known * (MIN_DISTRIBUTIONS // 2) + [None] * 7
    assert mean_distribution(many, LABELS) == pytest.approx({"DESC": 0.6, "ENTY": 0.3, "NUM": 0.1})
    assert mean_distribution(known * 4 + [None] * 30, LABELS) is None  # 8 known texts: too few


def test_calibration_divides_by_the_prior_and_renormalises():
    prior = {"DESC": 0.6, "ENTY": 0.3, "NUM": 0.1}
    out = calibrate({"DESC": 0.5, "ENTY": 0.3, "NUM": 0.2}, prior)
    assert max(out, key=out.get) == "NUM" and sum(out.values()) == pytest.approx(1.0)
    assert out["NUM"] == pytest.approx(2.0 / (0.5 / 0.6 + 1.0 + 2.0))
    # a uniform prior changes nothing; a label the prior never saw keeps its raw share
    assert calibrate({"DESC": 0.5, "ENTY": 0.3, "NUM": 0.2}, {k: 1 / 3 for k in LABELS}) == pytest.approx(
        {"DESC": 0.5, "ENTY": 0.3, "NUM": 0.2})
    assert calibrate({"DESC": 0.5, "ENTY": 0.5, "NUM": 0.0}, {"DESC": 0.5, "ENTY": 0.5, "NUM": 0.0})["NUM"] == 0.0


def test_the_summary_line_lists_the_prior_largest_first():
    line = describe_prior({"DESC": 0.2, "ENTY": 0.7, "NUM": 0.1}, 50)
    assert "over 50 random pool texts (ENTY 0.70, DESC 0.20, NUM 0.10)" in line
