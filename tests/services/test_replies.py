"""One table from an engine's error to the reply code to the API error the client sees."""
from __future__ import annotations

import pytest

from app.errors import ApiError
from app.services import replies
from engines import EngineCrashed, EngineError, EngineNotReady, EngineUnsupported


@pytest.mark.parametrize("error, code, status", [
    (EngineUnsupported("cannot"), "ENGINE_UNSUPPORTED", 501),
    (EngineNotReady(""), "SESSION_NOT_READY", 409),
    (EngineCrashed("gone"), "ENGINE_ERROR", 502),
    (EngineError("boom"), "ENGINE_ERROR", 502),
])
def test_an_engine_error_becomes_its_code_and_then_its_http_status(error, code, status):
    reply = replies.engine_failure(error)
    assert reply["ok"] is False and reply["code"] == code
    with pytest.raises(ApiError) as caught:
        replies.unwrap(reply)
    assert caught.value.status == status
    assert caught.value.code == code


def test_an_empty_engine_message_gets_the_rows_default():
    assert replies.engine_failure(EngineNotReady())["error"] == "Session is not ready"
    assert replies.engine_failure(EngineError())["error"] == "EngineError"


def test_every_code_of_the_table_unwraps_to_its_api_error_and_unknown_codes_to_502():
    for row in replies.ERRORS:
        with pytest.raises(row.api_error):
            replies.unwrap(replies.fail(row.code, "x"))
    with pytest.raises(ApiError) as caught:
        replies.unwrap({"ok": False, "code": "SOMETHING_NEW", "error": "x"})
    assert caught.value.status == 502
    with pytest.raises(ValueError, match="add it to replies.ERRORS"):
        replies.fail("SOMETHING_NEW", "x")


def test_a_malformed_reply_is_a_bad_gateway_and_ok_replies_unwrap_to_their_result():
    with pytest.raises(ApiError) as caught:
        replies.unwrap("not a reply")
    assert caught.value.status == 502
    assert replies.unwrap(replies.ok({"a": 1})) == {"a": 1}
