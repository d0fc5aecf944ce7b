"""The ASGI application. For now: health and readiness; the REST API grows here."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from accord import __version__
from accord.node import Node


def create_app(node: Node) -> FastAPI:
    app = FastAPI(title="Accord", version=__version__)
    app.state.node = node

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """Liveness: the process answers. Reveals no data."""
        return {"status": "ok", "version": __version__}

    @app.get("/ready", tags=["operations"])
    def ready() -> JSONResponse:
        """Readiness: the database answers."""
        try:
            with node.db.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ready"})

    return app
