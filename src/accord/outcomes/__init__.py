"""Outcome metrics, targets and comparisons of workflows (``docs/outcomes.md``)."""
