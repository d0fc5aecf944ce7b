"""The HTTP interface (FastAPI)."""
