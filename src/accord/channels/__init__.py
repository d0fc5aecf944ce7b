"""Channels: how messages reach a case and leave it (email first), sharing one inbound pipeline."""
