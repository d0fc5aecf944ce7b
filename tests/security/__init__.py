"""Replays of the attacks in issue 22, one module per class of attack (docs/security.md)."""
