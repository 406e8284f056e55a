"""Fields and bases shared by the schemas."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


class StrictSchema(Schema):
    """Unknown fields are an error (400), as in OpenWA."""

    class Meta:
        unknown = RAISE


#: An HTTP header name (RFC 9110 token) and a value HTTP can carry: Latin-1 text without
#: control characters (so no CR/LF), no leading or trailing white space.
HTTP_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HTTP_HEADER_VALUE = (r"^(?:[\x21-\x7e\xa0-\xff]"
                     r"(?:[\t\x20-\x7e\xa0-\xff]*[\x21-\x7e\xa0-\xff])?)?$")


class PartialUpdateSchema(StrictSchema):
    """A PUT body that changes some fields: at least one must be given (the document says
    so with ``minProperties``)."""

    @validates_schema(pass_original=True)
    def _not_empty(self, data: Any, original: Any, **kwargs: Any) -> None:
        if not isinstance(original, dict) or not original:
            raise ValidationError("the body must change at least one field")


#: Strings without NUL; http(s) URLs without white space or control characters (the same
#: characters for JSON Schema's and Python's regular expressions: no \s, which differ).
NO_NUL_PATTERN = r"^[^\x00]*$"
HTTP_URL_PATTERN = (r"^https?://[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029"
                    r"\u202f\u205f\u3000\ufeff]+$")
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


class StrictBool(fields.Boolean):
    """A JSON true or false; not 0, 1, "yes" or "on", which marshmallow would take."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = ("(?:" + "|".join([
    rf"(?:{_H}:){{7}}{_H}", rf"(?:{_H}:){{1,7}}:", rf"(?:{_H}:){{1,6}}:{_H}",
    rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}", rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
    rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}", rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    rf"{_H}:(?::{_H}){{1,6}}", rf":(?:(?::{_H}){{1,7}}|:)"]) + ")")
#: An IPv4 or IPv6 address (no embedded-IPv4 or zone notation), optionally with a /prefix.
IP_OR_CIDR_PATTERN = (rf"^(?:{_IPV4}(?:/(?:3[0-2]|[12]?[0-9]))?"
                      rf"|{_IPV6}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$")


class Text(fields.String):
    """A string that is valid Unicode text without NUL bytes (PostgreSQL cannot store
    them, and nobody means them); a lone surrogate is refused here too, not only at the
    request edge (app/hygiene.py), for strings that arrive another way. The document says
    so with a pattern, unless a validator's own pattern (which has no NUL) says more."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if "pattern" not in self.metadata and not any(
                isinstance(v, validate.Regexp) for v in self.validators):
            self.metadata = {**self.metadata, "pattern": NO_NUL_PATTERN}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result:
            raise ValidationError("must not contain NUL bytes")
        try:
            result.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid UTF-8 text") from None
        return result


class HttpUrl(Text):
    """An http(s) URL without white space or control characters (documented as a URI)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"format": "uri", "pattern": HTTP_URL_PATTERN,
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if not _HTTP_URL.match(result):
            raise ValidationError("must be an http or https URL without white space or "
                                  "control characters")
        return result


#: What a ``chatId`` may be, exactly as the document states it: a phone number (5-20
#: digits, optionally a leading + and spaces or hyphens between them) or a WhatsApp id.
CHAT_ID_PATTERN = (r"^(?:\+?[0-9](?:[ -]*[0-9]){4,19}[ -]*"
                   r"|[0-9]{5,20}@c\.us|[0-9]{5,20}(?:-[0-9]{5,20})?@g\.us)$")
_CHAT_ID = re.compile(CHAT_ID_PATTERN)


class ChatId(Text):
    """A phone number or WhatsApp id, normalised to ``<digits>@c.us`` / ``<id>@g.us``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": CHAT_ID_PATTERN, "maxLength": 64,
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(result) > 64 or not _CHAT_ID.match(result):
            raise ValidationError("must be a phone number or a WhatsApp id "
                                  "(<digits>@c.us or <id>@g.us)")
        if "@" in result:
            return result
        return re.sub(r"[^0-9]", "", result) + "@c.us"


class ErrorSchema(Schema):
    """The OpenWA error body."""

    statusCode = fields.Integer(required=True)
    message = fields.Raw(required=True, metadata={
        "description": "string, or a list of field messages",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
    error = fields.String(required=True)
    code = fields.String()
