"""Whether an activity is still open: the one definition every layer uses.

An agreed activity is *open* — someone still owes it — while its progress is ``agreed``
(committed, not started) or ``in_progress``; ``done`` and ``cancelled`` close it, and a
``proposed`` one is not owed yet. Reminders, overdue marks, webhooks' activity timers,
callback timers, the digest, the inbox's "Next due", the summary and the portal's "what we
owe you" all ask ``is_open`` (or ``activity_open``) instead of spelling the states out, so a
new progress state is decided here once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accord.core.state import State

OPEN_STATES = ("agreed", "in_progress")
"""The progress states of an open activity (a tuple: SQL ``IN`` lists take it as it is)."""


def is_open(progress: str | None) -> bool:
    """Whether an activity whose progress state is ``progress`` is still owed."""
    return progress in OPEN_STATES


def activity_open(state: State, activity: str) -> bool:
    """Whether ``activity`` of the case whose state is ``state`` is agreed and still owed;
    false for an activity the case does not have or whose progress is not recorded."""
    progress = state["progress"].get(activity)
    return progress is not None and is_open(progress["state"])
