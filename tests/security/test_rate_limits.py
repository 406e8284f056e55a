"""Rate limits (issue 16, point 2): counted in the broker's Redis (one count for every
process), per key id once authenticated and per client address before, three windows,
Retry-After only on 429, health exempt, TRUSTED_PROXIES for X-Forwarded-For."""
from __future__ import annotations

import pytest
import redis as redis_lib

from app import create_app
from app.services import api_keys
from tests.conftest import auth, make_config
from tests.security import dispose


@pytest.fixture
def limited(tmp_path, backend, redis_available, app):
    """Two apps on one database and one Redis, as two API processes: RATE_LIMIT_MAX=3."""
    built: list = []

    def build(name: str, **overrides):
        made = create_app(make_config(tmp_path / name, backend, redis_available,
                                      **{"rate_limit_max": 3, **overrides}))
        made.config["TESTING"] = True
        built.append(made)
        return made
    yield build
    dispose(built)


def key_for(app, role="viewer", **extra):
    with app.app_context():
        _, raw = api_keys.create({"name": f"rl-{role}", "role": role, **extra}, app.config["OPENWA"])
    return raw


def test_the_count_is_shared_by_every_process(limited, redis_available):
    first, second = limited("one"), limited("two")
    key = key_for(first)
    a, b = first.test_client(), second.test_client()
    assert a.get("/api/sessions", headers=auth(key)).status_code == 200
    assert b.get("/api/sessions", headers=auth(key)).status_code == 200
    assert a.get("/api/sessions", headers=auth(key)).status_code == 200
    assert b.get("/api/sessions", headers=auth(key)).status_code == 429
    assert a.get("/api/sessions", headers=auth(key)).status_code == 429
    stored = redis_lib.Redis.from_url(redis_available).keys("*LIMITER/openwa/*")
    assert stored, "the counters live in the broker's Redis"


def test_every_spelling_of_one_key_is_one_bucket(limited):
    app = limited("spell")
    key = key_for(app)
    client = app.test_client()
    spellings = [{"X-API-Key": key}, {"Authorization": f"Bearer {key}"},
                 {"Authorization": f"Bearer  {key}"}, {"Authorization": f"bearer {key} "},
                 {"X-API-Key": f" {key}"}]
    statuses = [client.get("/api/sessions", headers=h).status_code for h in spellings]
    assert statuses == [200, 200, 200, 429, 429]


def test_wrong_keys_count_against_the_client_address(limited):
    client = limited("wrong").test_client()
    statuses = [client.get("/api/sessions", headers={"X-API-Key": f"owa_k1_{n:064x}"}).status_code
                for n in range(6)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]


def test_retry_after_only_on_429(limited):
    app = limited("retry")
    key = key_for(app)
    client = app.test_client()
    for _ in range(3):
        ok = client.get("/api/sessions", headers=auth(key))
        assert ok.status_code == 200
        assert "Retry-After" not in ok.headers
        assert "X-RateLimit-Limit" in ok.headers
    refused = client.get("/api/sessions", headers=auth(key))
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_not_found_is_counted_but_carries_no_retry_after(limited):
    app = limited("nf")
    key = key_for(app)
    reply = app.test_client().get("/api/sessions/nope", headers=auth(key))
    assert reply.status_code == 404 and "Retry-After" not in reply.headers


def test_the_short_window_refuses_a_burst(limited):
    app = limited("short", rate_limit_max=1000, rate_limit_short_max=2)
    key = key_for(app)
    client = app.test_client()
    assert [client.get("/api/sessions", headers=auth(key)).status_code for _ in range(3)] == \
        [200, 200, 429]


def test_the_long_window_counts_too(limited):
    app = limited("long", rate_limit_max=1000, rate_limit_long_max=2)
    key = key_for(app)
    client = app.test_client()
    assert [client.get("/api/sessions", headers=auth(key)).status_code for _ in range(3)] == \
        [200, 200, 429]


def test_the_windows_follow_the_settings():
    from app.config import Config
    config = Config.from_env({"RATE_LIMIT_WINDOW": "30000", "RATE_LIMIT_MAX": "40",
                              "RATE_LIMIT_SHORT_WINDOW": "2000", "RATE_LIMIT_SHORT_MAX": "5",
                              "RATE_LIMIT_LONG_WINDOW": "86400000", "RATE_LIMIT_LONG_MAX": "900"})
    assert config.rate_limits == "5 per 2 second;40 per 30 second;900 per 86400 second"
    derived = Config.from_env({"RATE_LIMIT_MAX": "100"})
    assert derived.rate_limits == "50 per 1 second;100 per 60 second;2000 per 3600 second"


def test_health_is_never_limited(limited):
    client = limited("health").test_client()
    for _ in range(3):
        client.get("/api/sessions")
    assert client.get("/api/sessions").status_code == 429
    for _ in range(5):
        assert client.get("/api/health").status_code == 200
        assert client.get("/health/ready").status_code == 200


PROXY = "10.9.0.1"


def test_forwarded_clients_behind_a_trusted_proxy_have_their_own_buckets(limited):
    client = limited("proxy", trusted_proxies=["10.9.0.0/24"]).test_client()

    def call(forwarded: str) -> int:
        return client.get("/api/sessions", headers={"X-Forwarded-For": forwarded},
                          environ_base={"REMOTE_ADDR": PROXY}).status_code

    assert [call("203.0.113.7") for _ in range(4)] == [401, 401, 401, 429]
    assert call("203.0.113.8") == 401  # another client: another bucket
    # A client cannot escape by prepending hops: the right-most untrusted hop counts.
    assert call("198.51.100.1, 203.0.113.7") == 429


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(limited):
    client = limited("spoof", trusted_proxies=["10.9.0.0/24"]).test_client()
    statuses = [client.get("/api/sessions", headers={"X-Forwarded-For": f"203.0.113.{n}"},
                           environ_base={"REMOTE_ADDR": "192.0.2.50"}).status_code
                for n in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_allowed_ips_see_the_forwarded_client(limited):
    app = limited("ips", rate_limit_max=1000, trusted_proxies=["10.9.0.0/24"])
    key = key_for(app, allowed_ips=["203.0.113.0/24"])
    client = app.test_client()
    ok = client.get("/api/sessions", headers={**auth(key), "X-Forwarded-For": "203.0.113.9"},
                    environ_base={"REMOTE_ADDR": PROXY})
    assert ok.status_code == 200
    denied = client.get("/api/sessions", headers={**auth(key), "X-Forwarded-For": "198.51.100.9"},
                        environ_base={"REMOTE_ADDR": PROXY})
    assert denied.status_code == 403
    direct = client.get("/api/sessions", headers={**auth(key), "X-Forwarded-For": "203.0.113.9"},
                        environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert direct.status_code == 403  # not from the proxy: the header proves nothing
