"""Comparisons: the tests against known values, and a v2 that truly improves one metric
and not another, with the verdict saying exactly that."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from accord.outcomes.measures import (
    METRICS,
    compare,
    compare_metric,
    figure,
    statistic,
    verdict_sentence,
)

HOUR = 3600


def case(**facts: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        k: 0
        for k in (
            "transfers",
            "repeats",
            "callbacks_promised",
            "callbacks_kept",
            "activities_promised",
            "activities_kept",
            "rounds",
            "reopenings",
        )
    }
    base.update(
        first_response_s=None, agreement_s=None, resolution_s=None, rating=None, deviations=None
    )
    base.update(facts)
    return SimpleNamespace(**base)


def cohorts() -> tuple[list[SimpleNamespace], list[SimpleNamespace]]:
    """v1 and v2 with the same time to agreement; v2 has far fewer transfers."""
    rng = random.Random(4)
    v1 = [
        case(agreement_s=int(rng.uniform(1, 6) * HOUR), transfers=rng.choice([1, 2, 3, 3, 4]))
        for _ in range(40)
    ]
    v2 = [
        case(agreement_s=int(rng.uniform(1, 6) * HOUR), transfers=rng.choice([0, 0, 0, 1]))
        for _ in range(40)
    ]
    return v1, v2


def test_v2_improves_transfers_and_not_time_to_agreement() -> None:
    v1, v2 = cohorts()
    found = {c.metric: c for c in compare(v1, v2)}
    assert found["transfers"].verdict == "better"
    assert found["transfers"].p_value is not None and found["transfers"].p_value < 1e-6
    assert found["transfers"].a.n == 40 and found["transfers"].b.n == 40
    assert found["agreement"].verdict == "no clear difference"
    assert found["agreement"].p_value is not None and found["agreement"].p_value > 0.05
    assert found["resolution"].verdict == "not enough data"  # nobody resolved
    sentence = verdict_sentence("billing@v2", "billing@v1", list(found.values()))
    assert "better on transfers (handoffs);" in sentence
    assert "worse on nothing;" in sentence
    assert "time to first agreement" in sentence.split("no clear difference in")[1]


def test_worse_is_called_worse() -> None:
    v1, v2 = cohorts()
    assert compare_metric("transfers", v2, v1).verdict == "worse"


def test_mann_whitney_against_known_values() -> None:
    # Two samples whose U statistic is 3 out of 25; scipy's exact two-sided p is 0.0952.
    a = [case(agreement_s=h * HOUR) for h in (1, 2, 3, 4, 9)]
    b = [case(agreement_s=h * HOUR) for h in (5, 6, 7, 8, 10)]
    c = compare_metric("agreement", a, b)
    assert c.test == "Mann-Whitney U"
    assert c.p_value == pytest.approx(0.0952, abs=1e-4)
    assert c.verdict == "no clear difference"


def test_fisher_exact_against_known_values() -> None:
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70 = 0.4857.
    a = [case(callbacks_promised=4, callbacks_kept=3)]
    b = [case(callbacks_promised=4, callbacks_kept=1)]
    c = compare_metric("callbacks_on_time", a, b)
    assert c.test == "Fisher exact"
    assert c.p_value == pytest.approx(34 / 70)
    assert (c.a.value, c.b.value, c.a.n) == (75.0, 25.0, 4)
    # 97 of 100 kept against 71 of 100: far more than noise.
    big = compare_metric(
        "callbacks_on_time",
        [case(callbacks_promised=100, callbacks_kept=71)],
        [case(callbacks_promised=100, callbacks_kept=97)],
    )
    assert big.verdict == "better" and big.p_value is not None and big.p_value < 1e-5


def test_statistics() -> None:
    assert statistic("median", [1, 2, 3, 10]) == 2.5
    assert statistic("p90", list(range(1, 11))) == 9
    assert statistic("mean", [1, 2]) == 1.5
    assert statistic("max", [1, 7, 2]) == 7
    assert statistic("median", []) is None
    rows = [case(agreement_s=2 * HOUR), case(agreement_s=None), case(agreement_s=4 * HOUR)]
    f = figure("agreement", rows)
    assert (f.value, f.n, f.shown()) == (3.0, 2, "3.0 h")  # open cases left out
    assert set(METRICS) >= {
        "first_response",
        "agreement",
        "resolution",
        "transfers",
        "repeats",
        "callbacks_on_time",
        "rounds",
        "reopenings",
        "satisfaction",
    }
