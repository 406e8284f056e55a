"""Input hygiene at the request edge, in one place (issue 16).

Every JSON body is checked here before a view or a schema sees it: it must be UTF-8 JSON
whose strings (keys included) are valid Unicode text (no lone surrogates, which no
database or HTTP header can carry), whose numbers are finite and fit in 64 bits, and
which nests at most ``MAX_DEPTH`` levels. A body that fails is a 400 in the OpenWA error
shape; nothing is stored. The schemas then apply the per-field rules.
"""
from __future__ import annotations

import json
import math
from typing import Any

from flask import Flask, Response, request
from webargs.core import is_json

from app.errors import error_response

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class UnfitInput(ValueError):
    """The body is not text this API accepts; the message says why, never quoting it."""


def _reject_constant(name: str) -> Any:
    raise UnfitInput(f"{name} is not a JSON number this API accepts")


def _check_string(value: str, where: str) -> None:
    if value.isascii():  # -- media (issue 12): O(1), and no copy of a 20 MB base64 string
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnfitInput(f"{where}: is not valid UTF-8 text (lone surrogate)") from None


def check_value(document: Any) -> None:
    """Walk a parsed document (iteratively: depth is what is being checked)."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "body")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            raise UnfitInput(f"body: nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, where)
                stack.append((item, depth + 1, str(key) if depth == 1 else where))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, where) for item in value)
        elif isinstance(value, str):
            _check_string(value, where)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise UnfitInput(f"{where}: number is out of range")
        elif isinstance(value, float) and not math.isfinite(value):
            raise UnfitInput(f"{where}: number is out of range")


def load_json(data: bytes) -> Any:
    """Parse a body as the views will see it, or raise :class:`UnfitInput`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnfitInput("body: is not valid UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise UnfitInput(f"body: nests deeper than {MAX_DEPTH} levels") from None
    except UnfitInput:
        raise
    except ValueError as error:  # JSONDecodeError, or an integer of more than 4,300 digits
        if "digits" in str(error):
            raise UnfitInput("body: number is out of range") from None
        raise UnfitInput("Invalid JSON body.") from None  # webargs' own words
    check_value(document)
    return document


def install(app: Flask) -> None:
    @app.before_request
    def _check_json_body() -> Response | None:
        if request.method not in BODY_METHODS or not is_json(request.mimetype):
            return None
        data = request.get_data(cache=True)
        if not data:
            return None
        try:
            load_json(data)
        except UnfitInput as error:
            return error_response(400, [str(error)])
        return None
