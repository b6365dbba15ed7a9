"""The API docs pages (/docs Swagger UI, /redoc ReDoc) with their scripts and styles served by the node itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), so on a node without
internet access they stay blank. Both are vendored under static/vendor/ (Swagger UI 5.35.0, ReDoc 2.5.4, the
versions FastAPI's defaults point at) and these pages, which replace FastAPI's, point there.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

SWAGGER = "/static/vendor/swagger-ui"
REDOC = "/static/vendor/redoc"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def mount(app: FastAPI) -> None:
    """Replace FastAPI's /docs and /redoc pages by ones whose assets come from this node's /static."""
    if not app.openapi_url:
        return
    pages = {path for path in (app.docs_url, app.redoc_url) if path}
    app.router.routes[:] = [r for r in app.router.routes if not (isinstance(r, Route) and r.path in pages)]
    openapi_url = app.openapi_url

    if app.docs_url:
        async def swagger_ui(request: Request) -> HTMLResponse:
            root = _root(request)
            oauth2 = app.swagger_ui_oauth2_redirect_url
            return get_swagger_ui_html(
                openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{SWAGGER}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{SWAGGER}/swagger-ui.css",
                swagger_favicon_url=f"{root}{SWAGGER}/favicon-32x32.png",
                oauth2_redirect_url=root + oauth2 if oauth2 else None, init_oauth=app.swagger_ui_init_oauth,
                # no badge fetched from the public validator service
                swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})})

        app.add_route(app.docs_url, swagger_ui, include_in_schema=False)

    if app.redoc_url:
        async def redoc(request: Request) -> HTMLResponse:
            root = _root(request)
            return get_redoc_html(openapi_url=root + openapi_url, title=f"{app.title} - ReDoc",
                                  redoc_js_url=f"{root}{REDOC}/redoc.standalone.js",
                                  redoc_favicon_url=f"{root}{SWAGGER}/favicon-32x32.png", with_google_fonts=False)

        app.add_route(app.redoc_url, redoc, include_in_schema=False)
