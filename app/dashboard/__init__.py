"""The web dashboard at ``/`` (and ``/dashboard``), and Swagger UI's files for ``/api/docs``.

One server-rendered page and small hand-written scripts: the page uses only the public REST
API and ``/events``, with the API key kept in the browser's session storage. Its own
Content-Security-Policy allows scripts, styles and connections from this origin only, so a
WhatsApp-supplied string that slipped into markup still could not run. Swagger UI's files
come from the ``flask-swagger-ui`` package and are served here: ``/api/docs`` needs no CDN.
"""
from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, render_template, request, send_from_directory

from app.config import Config

SWAGGER_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                 "favicon-32x32.png", "favicon-16x16.png")

PAGE_ENDPOINTS = ("dashboard.page", "dashboard.page_alias")


def csp(host: str) -> str:
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


def _security_headers(response: Response) -> Response:
    if request.endpoint in PAGE_ENDPOINTS or request.endpoint == "dashboard.static":
        response.headers["Content-Security-Policy"] = csp(request.host)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint in PAGE_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
    return response


def _page() -> str:
    return render_template("dashboard.html")


def _swagger_asset(filename: str) -> Response:
    if filename not in SWAGGER_FILES:
        return Response(status=404)
    return send_from_directory(SWAGGER_DIST, filename, max_age=86400)


def make_blueprint(config: Config) -> Blueprint:
    """The page at / and /dashboard, its files, and Swagger UI's files below the docs path."""
    blp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
                    static_url_path="/dashboard/static")
    blp.add_url_rule("/", "page", _page)
    blp.add_url_rule("/dashboard", "page_alias", _page)
    blp.add_url_rule(f"{config.api_prefix}/docs/assets/<path:filename>", "swagger_asset",
                     _swagger_asset)
    blp.after_request(_security_headers)
    return blp
