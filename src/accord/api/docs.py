"""The interactive API documentation at ``/docs``, served from this node.

FastAPI's own ``/docs`` page loads Swagger UI's script and stylesheet from a CDN and starts
it with an inline script, so a page of this node would run code it does not serve, and
could not carry the Content-Security-Policy of every other page. Here Swagger UI's files
come from the ``swagger-ui-bundle`` package (mounted at ``/docs/assets``), the starting
script is a file too (``/docs/start.js``), and the page sends the same security headers as
the web pages (``accord.web.session.secure_headers``). ReDoc, which has no packaged copy,
is off.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from accord.web.session import secure_headers

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} · API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``; create the application with ``docs_url=None, redoc_url=None``."""
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs_page() -> Response:
        return secure_headers(HTMLResponse(PAGE.format(title=app.title)))

    @app.get("/docs/start.js", include_in_schema=False)
    def docs_start() -> Response:
        return secure_headers(Response(START, media_type="text/javascript"))
