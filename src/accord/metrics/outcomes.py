"""The metric catalogue and figures over a set of cases: summaries, series, comparisons.

Pure: it works on rows of ``case_metrics`` (any object with those attributes). Each
metric has one per-case value (or a kept/promised pair for on-time rates), a default
statistic and a direction (``lower`` or ``higher`` is better). Cases that have not
reached a point (an open case has no resolution time) are left out of that metric, and
every figure carries the number of cases behind it.

Comparisons test whether a difference is more than noise: a two-sided Mann-Whitney U
test (``scipy.stats.mannwhitneyu``) on the per-case values of durations, counts and
ratings, and Fisher's exact test on the 2x2 table of kept and missed promises for rates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scipy import stats as scipy_stats

ALPHA = 0.05
HOUR = 3600.0


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str  # duration (business hours), count (per case), rate (share kept), score
    column: str
    stat: str  # the default statistic
    better: str  # lower or higher
    kept: str | None = None  # for rates: the kept column; ``column`` is the promised one

    @property
    def unit(self) -> str:
        return {"duration": "business h", "count": "per case", "rate": "%", "score": "of 5"}[
            self.kind
        ]


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "first_response",
            "Time to first response",
            "duration",
            "first_response_s",
            "median",
            "lower",
        ),
        Metric(
            "agreement", "Time to first agreement", "duration", "agreement_s", "median", "lower"
        ),
        Metric("resolution", "Time to resolution", "duration", "resolution_s", "median", "lower"),
        Metric("transfers", "Transfers (handoffs)", "count", "transfers", "mean", "lower"),
        Metric("repeats", "Asked to identify again or repeat", "count", "repeats", "mean", "lower"),
        Metric(
            "callbacks_on_time",
            "Callbacks kept on time",
            "rate",
            "callbacks_promised",
            "rate",
            "higher",
            kept="callbacks_kept",
        ),
        Metric(
            "activities_on_time",
            "Activities done on time",
            "rate",
            "activities_promised",
            "rate",
            "higher",
            kept="activities_kept",
        ),
        Metric("rounds", "Negotiation rounds", "count", "rounds", "mean", "lower"),
        Metric("reopenings", "Reopenings", "count", "reopenings", "mean", "lower"),
        Metric("satisfaction", "Satisfaction rating", "score", "rating", "mean", "higher"),
        Metric(
            "deviations", "Deviations from the template", "count", "deviations", "mean", "lower"
        ),
    )
}
STATS = ("median", "mean", "p90", "max", "rate")


@dataclass(frozen=True)
class Figure:
    """One statistic of one metric over some cases; ``value`` is None without cases."""

    metric: str
    stat: str
    value: float | None
    n: int  # cases behind the figure (for rates: promises judged)

    def shown(self) -> str:
        return show(self.metric, self.value)


def show(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    kind = METRICS[metric].kind
    if kind == "duration":
        return f"{value:.1f} h"
    if kind == "rate":
        return f"{value:.0f}%"
    return f"{value:.2f}"


def values(metric: Metric, rows: Iterable[Any]) -> list[float]:
    """The per-case values of ``metric`` (durations in business hours)."""
    out = []
    for row in rows:
        v = getattr(row, metric.column)
        if v is None:
            continue
        out.append(v / HOUR if metric.kind == "duration" else float(v))
    return out


def promises(metric: Metric, rows: Iterable[Any]) -> tuple[int, int]:
    """(kept, promised) over ``rows`` for a rate metric."""
    assert metric.kept is not None
    kept = promised = 0
    for row in rows:
        kept += getattr(row, metric.kept)
        promised += getattr(row, metric.column)
    return kept, promised


def figure(key: str, rows: Sequence[Any], stat: str | None = None) -> Figure:
    metric = METRICS[key]
    stat = stat or metric.stat
    if metric.kind == "rate":
        kept, promised = promises(metric, rows)
        return Figure(key, "rate", 100.0 * kept / promised if promised else None, promised)
    vals = values(metric, rows)
    return Figure(key, stat, statistic(stat, vals), len(vals))


def statistic(stat: str, vals: Sequence[float]) -> float | None:
    if not vals:
        return None
    if stat == "median":
        return float(statistics.median(vals))
    if stat == "mean":
        return float(statistics.fmean(vals))
    if stat == "max":
        return float(max(vals))
    if stat == "p90":
        ordered = sorted(vals)
        return float(ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)])
    raise ValueError(f"unknown statistic {stat!r}; one of {', '.join(STATS)}")


def summary(rows: Sequence[Any]) -> dict[str, Figure]:
    return {key: figure(key, rows) for key in METRICS}


def bucket_start(moment: datetime, size: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    raise ValueError("a bucket is a day, week or month")


def series(
    key: str, rows: Sequence[Any], size: str, stat: str | None = None
) -> list[tuple[datetime, Figure]]:
    """The metric per bucket of opening time, oldest first."""
    groups: dict[datetime, list[Any]] = {}
    for row in rows:
        groups.setdefault(bucket_start(_aware(row.opened_at), size), []).append(row)
    return [(start, figure(key, groups[start], stat)) for start in sorted(groups)]


def ageing(opened: Iterable[datetime], at: datetime) -> dict[str, int]:
    """Open cases by age (wall-clock) at ``at``."""
    bands = {"under 1 day": 0, "1-3 days": 0, "3-7 days": 0, "7-30 days": 0, "over 30 days": 0}
    for moment in opened:
        days = (at - _aware(moment)).total_seconds() / 86400
        if days < 1:
            bands["under 1 day"] += 1
        elif days < 3:
            bands["1-3 days"] += 1
        elif days < 7:
            bands["3-7 days"] += 1
        elif days < 30:
            bands["7-30 days"] += 1
        else:
            bands["over 30 days"] += 1
    return bands


# -- comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    metric: str
    a: Figure
    b: Figure
    test: str
    p_value: float | None
    verdict: str  # "better", "worse", "no clear difference", "not enough data"

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA


def compare(rows_a: Sequence[Any], rows_b: Sequence[Any]) -> list[Comparison]:
    """Every metric, B against A; ``verdict`` says whether B is better, worse, or not
    clearly different (p >= ALPHA), from the metric's direction."""
    return [compare_metric(key, rows_a, rows_b) for key in METRICS]


def compare_metric(key: str, rows_a: Sequence[Any], rows_b: Sequence[Any]) -> Comparison:
    metric = METRICS[key]
    a, b = figure(key, rows_a), figure(key, rows_b)
    if metric.kind == "rate":
        kept_a, promised_a = promises(metric, rows_a)
        kept_b, promised_b = promises(metric, rows_b)
        test = "Fisher exact"
        if not promised_a or not promised_b:
            return Comparison(key, a, b, test, None, "not enough data")
        _, p = scipy_stats.fisher_exact(
            [[kept_a, promised_a - kept_a], [kept_b, promised_b - kept_b]]
        )
        diff = kept_b / promised_b - kept_a / promised_a
    else:
        va, vb = values(metric, rows_a), values(metric, rows_b)
        test = "Mann-Whitney U"
        if len(va) < 2 or len(vb) < 2:
            return Comparison(key, a, b, test, None, "not enough data")
        if len(set(va) | set(vb)) == 1:
            return Comparison(key, a, b, test, 1.0, "no clear difference")
        p = scipy_stats.mannwhitneyu(va, vb, alternative="two-sided").pvalue
        # The direction of the shift, by the difference in mean ranks.
        diff = _mean_rank_shift(va, vb)
    p = float(p)
    verdict = "no clear difference"
    if p < ALPHA and diff != 0:
        verdict = "better" if (diff > 0) == (metric.better == "higher") else "worse"
    return Comparison(key, a, b, test, p, verdict)


def _mean_rank_shift(va: Sequence[float], vb: Sequence[float]) -> float:
    ranks = scipy_stats.rankdata([*va, *vb])
    return float(ranks[len(va) :].mean() - ranks[: len(va)].mean())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
