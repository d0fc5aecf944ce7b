"""Outcome metrics, targets and comparisons of workflows (``docs/metrics.md``)."""
