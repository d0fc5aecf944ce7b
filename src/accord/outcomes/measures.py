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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from accord.outcomes.catalogue import METRICS as METRICS
from accord.outcomes.catalogue import Metric as Metric

ALPHA = 0.05
HOUR = 3600.0


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


class Cohort:
    """The facts of a set of cases as columns (NumPy arrays, NaN for none), ordered by
    opening time, so figures over 100,000 cases are vector operations, not loops."""

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        opened: np.ndarray,
        templates: dict[str, int] | None = None,
    ) -> None:
        self.columns = columns
        self.opened = opened  # epoch seconds, ascending
        self.templates = templates or {}  # template name -> its code in columns["template"]

    @classmethod
    def of(cls, rows: Sequence[Any] | Cohort) -> Cohort:
        """From rows of ``case_metrics`` (anything with those attributes)."""
        if isinstance(rows, Cohort):
            return rows
        n = len(rows)
        wanted = {m.column for m in METRICS.values()} | {m.kept for m in METRICS.values() if m.kept}
        columns: dict[str, np.ndarray] = {}
        first = rows[0] if n else None
        for name in sorted(wanted):
            if first is not None and not hasattr(first, name):
                continue
            columns[name] = np.fromiter(
                (np.nan if v is None else v for v in (getattr(r, name) for r in rows)),
                dtype=float,
                count=n,
            )
        if first is not None and hasattr(first, "resolved_at"):
            columns["resolved"] = np.fromiter(
                (r.resolved_at is not None for r in rows), dtype=bool, count=n
            )
        if first is not None and hasattr(first, "opened_at"):
            opened = np.fromiter((_epoch(r.opened_at) for r in rows), dtype=float, count=n)
        else:
            opened = np.zeros(n)
        order = np.argsort(opened, kind="stable")
        if n and not np.array_equal(order, np.arange(n)):
            columns = {k: v[order] for k, v in columns.items()}
            opened = opened[order]
        return cls(columns, opened)

    @classmethod
    def empty(cls, names: Iterable[str]) -> Cohort:
        return cls(
            {name: np.zeros(0) for name in names} | {"resolved": np.zeros(0, bool)}, np.zeros(0)
        )

    def __len__(self) -> int:
        return len(self.opened)

    def take(self, which: slice | np.ndarray) -> Cohort:
        return Cohort(
            {k: v[which] for k, v in self.columns.items()}, self.opened[which], self.templates
        )

    def of_template(self, name: str) -> Cohort:
        """The cases of one template (needs the codes a database cohort carries)."""
        code = self.templates.get(name)
        if code is None or "template" not in self.columns:
            return self.take(np.zeros(len(self), dtype=bool))
        return self.take(self.columns["template"] == code)

    @property
    def open_count(self) -> int:
        return int((~self.columns["resolved"]).sum()) if "resolved" in self.columns else 0


def values(metric: Metric, rows: Sequence[Any] | Cohort) -> np.ndarray:
    """The per-case values of ``metric`` that exist (durations in business hours)."""
    column = Cohort.of(rows).columns.get(metric.column)
    if column is None:
        return np.zeros(0)
    found: np.ndarray = column[~np.isnan(column)]
    return found / HOUR if metric.kind == "duration" else found


def promises(metric: Metric, rows: Sequence[Any] | Cohort) -> tuple[int, int]:
    """(kept, promised) over ``rows`` for a rate metric."""
    assert metric.kept is not None
    cohort = Cohort.of(rows)
    return int(np.nansum(cohort.columns[metric.kept])), int(
        np.nansum(cohort.columns[metric.column])
    )


def figure(key: str, rows: Sequence[Any] | Cohort, stat: str | None = None) -> Figure:
    metric = METRICS[key]
    stat = stat or metric.stat
    if metric.kind == "rate":
        kept, promised = promises(metric, rows)
        return Figure(key, "rate", 100.0 * kept / promised if promised else None, promised)
    vals = values(metric, rows)
    return Figure(key, stat, statistic(stat, vals), len(vals))


def statistic(stat: str, vals: Sequence[float] | np.ndarray) -> float | None:
    """median, mean, max, or p90 (the nearest-rank 90th percentile)."""
    if stat not in STATS[:-1]:
        raise ValueError(f"unknown statistic {stat!r}; one of {', '.join(STATS)}")
    if len(vals) == 0:
        return None
    arr = np.asarray(vals, dtype=float)
    if stat == "median":
        return float(np.median(arr))
    if stat == "mean":
        return float(arr.mean())
    if stat == "max":
        return float(arr.max())
    rank = min(len(arr) - 1, math.ceil(0.9 * len(arr)) - 1)
    return float(np.partition(arr, rank)[rank])


def summary(rows: Sequence[Any] | Cohort) -> dict[str, Figure]:
    cohort = Cohort.of(rows)
    return {key: figure(key, cohort) for key in METRICS}


def bucket_start(moment: datetime, size: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    raise ValueError("a bucket is a day, week or month")


def buckets(cohort: Cohort, size: str) -> list[tuple[datetime, slice]]:
    """The cohort's cases per day, week (from Monday) or month of opening (UTC), as
    (bucket start, slice of the cohort), oldest first."""
    if size not in ("day", "week", "month"):
        raise ValueError("a bucket is a day, week or month")
    if not len(cohort):
        return []
    days = np.floor(cohort.opened / 86400).astype(np.int64)
    if size == "day":
        keys = days
    elif size == "week":
        keys = days - (days + 3) % 7  # 1970-01-01 was a Thursday
    else:
        keys = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    out = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        start = datetime.fromtimestamp(float(days[a]) * 86400, UTC)
        out.append((bucket_start(start, size), slice(a, b)))
    return out


def series(
    key: str, rows: Sequence[Any] | Cohort, size: str, stat: str | None = None
) -> list[tuple[datetime, Figure]]:
    """The metric per bucket of opening time, oldest first."""
    cohort = Cohort.of(rows)
    return [(start, figure(key, cohort.take(part), stat)) for start, part in buckets(cohort, size)]


AGE_BANDS = (
    ("under 1 day", 1),
    ("1-3 days", 3),
    ("3-7 days", 7),
    ("7-30 days", 30),
    ("over 30 days", math.inf),
)


def ageing(opened: Sequence[float] | np.ndarray, at: datetime) -> dict[str, int]:
    """Open cases by wall-clock age at ``at``; ``opened`` in epoch seconds."""
    days = (at.timestamp() - np.asarray(opened, dtype=float)) / 86400
    limits = [float(limit) for _, limit in AGE_BANDS[:-1]]
    band = np.searchsorted(limits, days, side="right")
    counts = np.bincount(band, minlength=len(AGE_BANDS))
    return {label: int(n) for (label, _), n in zip(AGE_BANDS, counts, strict=True)}


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


def compare(rows_a: Sequence[Any] | Cohort, rows_b: Sequence[Any] | Cohort) -> list[Comparison]:
    """Every metric, B against A; ``verdict`` says whether B is better, worse, or not
    clearly different (p >= ALPHA), from the metric's direction."""
    a, b = Cohort.of(rows_a), Cohort.of(rows_b)
    return [compare_metric(key, a, b) for key in METRICS]


def compare_metric(
    key: str, rows_a: Sequence[Any] | Cohort, rows_b: Sequence[Any] | Cohort
) -> Comparison:
    metric = METRICS[key]
    rows_a, rows_b = Cohort.of(rows_a), Cohort.of(rows_b)
    a, b = figure(key, rows_a), figure(key, rows_b)
    if metric.kind == "rate":
        kept_a, promised_a = promises(metric, rows_a)
        kept_b, promised_b = promises(metric, rows_b)
        test = "Fisher exact"
        if not promised_a or not promised_b:
            return Comparison(key, a, b, test, None, "not enough data")
        _, p = _scipy_stats().fisher_exact(
            [[kept_a, promised_a - kept_a], [kept_b, promised_b - kept_b]]
        )
        diff = kept_b / promised_b - kept_a / promised_a
    else:
        va, vb = values(metric, rows_a), values(metric, rows_b)
        test = "Mann-Whitney U"
        if len(va) < 2 or len(vb) < 2:
            return Comparison(key, a, b, test, None, "not enough data")
        if np.unique(np.r_[va, vb]).size == 1:
            return Comparison(key, a, b, test, 1.0, "no clear difference")
        p = _scipy_stats().mannwhitneyu(va, vb, alternative="two-sided").pvalue
        # The direction of the shift, by the difference in mean ranks.
        diff = _mean_rank_shift(va, vb)
    p = float(p)
    verdict = "no clear difference"
    if p < ALPHA and diff != 0:
        verdict = "better" if (diff > 0) == (metric.better == "higher") else "worse"
    return Comparison(key, a, b, test, p, verdict)


def _scipy_stats() -> Any:
    """``scipy.stats``, imported on first use: it costs about a second, which every
    ``accord`` command would otherwise pay at start for the few that compare cohorts."""
    from scipy import stats

    return stats


def _mean_rank_shift(va: np.ndarray, vb: np.ndarray) -> float:
    ranks = _scipy_stats().rankdata([*va, *vb])
    return float(ranks[len(va) :].mean() - ranks[: len(va)].mean())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def verdict_sentence(label_b: str, label_a: str, found: list[Comparison]) -> str:
    """One sentence: what B does better, worse, and where it makes no clear difference."""
    better = [METRICS[c.metric].label.lower() for c in found if c.verdict == "better"]
    worse = [METRICS[c.metric].label.lower() for c in found if c.verdict == "worse"]
    same = [METRICS[c.metric].label.lower() for c in found if c.verdict == "no clear difference"]
    parts = [f"{label_b} against {label_a}:"]
    parts.append(f"better on {', '.join(better)};" if better else "better on nothing;")
    parts.append(f"worse on {', '.join(worse)};" if worse else "worse on nothing;")
    parts.append(f"no clear difference in {', '.join(same)}." if same else "")
    return " ".join(p for p in parts if p)
