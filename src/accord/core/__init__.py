"""The pure domain of Accord: canonical events, signatures, the case fold and its rules.

Nothing here performs I/O or imports a framework; every outer layer calls in.
"""
