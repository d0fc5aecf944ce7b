"""The metric catalogue: each outcome metric's key, label, kind, column, default
statistic and direction. Kept apart from ``accord.outcomes.measures`` (which needs NumPy)
so that the command line can name the metrics in its help without loading NumPy."""

from __future__ import annotations

from dataclasses import dataclass


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
