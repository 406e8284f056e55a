"""The limit of the HTTP layer: a bare Flask JSON endpoint, served by gunicorn with the
API's own settings (gthread, API_WORKERS workers x API_THREADS threads).

    gunicorn -k gthread -w 2 --threads 8 --chdir scripts/bench bare_flask:app
"""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo():  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True) or {}
    return jsonify({"ok": True, "text": body.get("text")}), 201


@app.get("/ping")
def ping():  # type: ignore[no-untyped-def]
    return jsonify({"ok": True})
