"""``/docs``: Swagger UI served from the ``swagger-ui-py`` package, so the
API's documentation works on a closed network (FastAPI's default page loads
its scripts from a CDN and stays blank without internet). Swagger UI 5 is
needed: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["install"]

ASSETS = "/docs/assets"


def swagger_ui_dir() -> Path:
    """The directory of Swagger UI's files inside ``swagger-ui-py``."""
    return Path(str(files("swagger_ui") / "static"))


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (the app is built with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title="runtrack API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/favicon.svg",
        )
