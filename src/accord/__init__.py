"""Accord: customer service where every case is a negotiation between parties."""

__version__ = "0.1.0"
