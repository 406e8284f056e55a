"""The selenium engine against real Chromium and chromedriver, on the local WhatsApp Web stand-in.

Each test drives one engine (one browser) directly, without the platform around it; the
end-to-end flow through the API and a session host is in tests/integration/test_selenium_flow.py.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from engines import EngineCrashed, EngineError, EngineState, EventKind, create_engine
from engines.base import EngineEvent
from engines.selenium import SeleniumOptions
from engines.selenium import profile as profiles
from engines.selenium.browser import START_TIMEOUT, chromium_flags, launch, resolver_rules
from engines.selenium.engine import SeleniumEngine
from tests.conftest import CHROMIUM_TEST_ARGS
from tests.standin import StandIn

pytestmark = pytest.mark.selenium

MakeEngine = Callable[..., SeleniumEngine]


@pytest.fixture
def make_engine(chromium: dict[str, str], standin: StandIn, tmp_path: Path) -> Iterator[MakeEngine]:
    made: list[SeleniumEngine] = []

    def make(name: str = "s1", **overrides: object) -> SeleniumEngine:
        options = SeleniumOptions(
            executable_path=chromium["browser"], driver_path=chromium["driver"],
            wajs_bundle_path=chromium["wajs"], whatsapp_web_url=standin.url,
            allowed_hosts=["localhost"], extra_args=list(CHROMIUM_TEST_ARGS), command_timeout=4.0,
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        engine = create_engine("selenium", name, tmp_path / name, options)
        assert isinstance(engine, SeleniumEngine)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


def pump(engine: SeleniumEngine, until: Callable[[EngineEvent], bool], timeout: float = 10.0,
         seen: list[EngineEvent] | None = None) -> EngineEvent:
    """Poll like a session host until an event matches; return it (``seen`` gets them all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in engine.poll():
            if seen is not None:
                seen.append(event)
            if until(event):
                return event
        time.sleep(0.02)
    raise AssertionError(f"no matching event within {timeout} s; state {engine.state.value}")


def kind(name: EventKind, **data: object) -> Callable[[EngineEvent], bool]:
    return lambda e: e.kind is name and all(e.data.get(k) == v for k, v in data.items())


def state(value: EngineState) -> Callable[[EngineEvent], bool]:
    return kind(EventKind.STATE, state=value.value)


def link(engine: SeleniumEngine, standin: StandIn, phone: str) -> None:
    engine.start()
    qr = pump(engine, kind(EventKind.QR)).data["qr"]
    standin.scan(qr, phone=phone)
    pump(engine, kind(EventKind.READY, phone=phone))


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- no browser needed ------------------------------------------------------------------------
def test_resolver_rules_allow_only_the_listed_hosts() -> None:
    assert resolver_rules(["localhost"]) == "MAP * ~NOTFOUND , EXCLUDE localhost"
    production = resolver_rules(["localhost", "*.whatsapp.net", "web.whatsapp.com"])
    assert production == ("MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.whatsapp.net , "
                          "EXCLUDE web.whatsapp.com")
    assert resolver_rules([]) is None and resolver_rules(["*"]) is None


def test_flags_put_the_profile_first_and_the_operators_args_last(tmp_path: Path) -> None:
    options = SeleniumOptions(allowed_hosts=["localhost"],
                              extra_args=["--lang=de", "--disable-features=Foo,Translate"])
    flags = chromium_flags(options, tmp_path)
    assert flags[0] == f"--user-data-dir={tmp_path.resolve()}"
    assert "--headless=new" in flags and "--lang=de" in flags
    assert flags.index("--lang=de") > flags.index("--headless=new")
    # Chromium keeps only the last feature switch: ours and the operator's become one.
    disabled = [f for f in flags if f.startswith("--disable-features=")]
    assert len(disabled) == 1
    names = disabled[0].split("=", 1)[1].split(",")
    assert "Foo" in names and names.count("Translate") == 1 and "MediaRouter" in names
    assert "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost" in flags
    assert "--headless=new" not in chromium_flags(SeleniumOptions(headless=False), tmp_path)


def test_a_missing_bundle_or_driver_is_a_clear_start_error(tmp_path: Path) -> None:
    engine = create_engine("selenium", "x", tmp_path / "x",
                           SeleniumOptions(wajs_bundle_path=str(tmp_path / "none.js")))
    with pytest.raises(EngineError, match="wa-js bundle not found .*make wajs"):
        engine.start()
    assert engine.state is EngineState.DISCONNECTED  # the host retries with backoff
    bundle = tmp_path / "wa.js"
    bundle.write_text("window.WPP = {};")
    browser = tmp_path / "chromium"  # found, so that the missing driver is what fails
    browser.write_text("#!/bin/sh\nexit 1\n")
    browser.chmod(0o755)
    engine = create_engine("selenium", "y", tmp_path / "y", SeleniumOptions(
        wajs_bundle_path=str(bundle), driver_path=str(tmp_path / "chromedriver"),
        executable_path=str(browser)))
    with pytest.raises(EngineError, match="chromedriver not found .*CHROMIUM_DRIVER_PATH"):
        engine.start()
    # The lock was released: the profile is free for the next attempt.
    lock = profiles.ProfileLock(tmp_path / "y")
    lock.acquire()
    lock.release()


# -- one browser each -----------------------------------------------------------------------------
def test_the_real_wajs_bundle_defined_wpp_before_the_standin_took_over(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    engine.start()
    qr = pump(engine, kind(EventKind.QR)).data["qr"]
    device = standin.device_for(qr=qr)
    assert device is not None and device.saw is not None
    saw = device.saw
    # What the page's first script found: wa-js 4.6.0 from npm with its API, Google Analytics
    # turned off through WPPConfig, and our bridge already armed.
    assert saw["present"] and saw["version"] == "4.6.0" and saw["license"] == "Apache-2.0"
    assert saw["hasConn"] and saw["gaDisabled"] and saw["bridgeBefore"]
    assert engine.wajs_version == "stand-in"  # the bridge then found the stand-in's WPP
    assert qr.startswith("2@") and qr.count(",") == 3


def test_the_qr_rotates_an_expired_one_does_not_link_and_an_idle_one_is_refreshed(
        make_engine: MakeEngine, standin: StandIn) -> None:
    standin.config.update(qrRotateMs=700, qrMaxRotations=2)
    try:
        engine = make_engine()
        engine.start()
        codes: list[str] = []
        seen: list[EngineEvent] = []
        while len(codes) < 4:  # two rotations, idle, then the engine's refresh
            codes.append(pump(engine, kind(EventKind.QR), seen=seen).data["qr"])
        assert len(set(codes)) == 4
        # Only the rotating ref changes; the keys hold for the whole link attempt.
        assert len({code.split(",", 1)[1] for code in codes}) == 1
        with pytest.raises(LookupError):
            standin.scan(codes[0], phone="15550000101")
        standin.config.update(qrRotateMs=20000)
        current = engine.qr()
        assert current == codes[-1]
        standin.scan(current, phone="15550000101")
        pump(engine, kind(EventKind.READY, phone="15550000101"))
        assert engine.qr() is None
    finally:
        standin.config.update(qrRotateMs=20000, qrMaxRotations=6)


def test_send_receive_and_acks_and_a_reload_keeps_the_binding(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000102")
    sent = engine.send_text("15550009999", "hi", message_id="3EB0AAAA0000000000000102")
    assert sent.message_id == "true_15550009999@c.us_3EB0AAAA0000000000000102"
    assert standin.state()["sent"][-1]["key"] == "3EB0AAAA0000000000000102"
    assert engine.find_sent("15550009999", "3EB0AAAA0000000000000102") == sent
    assert engine.find_sent("15550009999", "3EB0FFFF0000000000000102") is None
    standin.ack(sent.message_id, 2)
    pump(engine, kind(EventKind.ACK, messageId=sent.message_id, ack="delivered"))

    device = standin.device_for(phone="15550000102")
    assert device is not None
    loads = device.loads
    standin.push(device, {"type": "reload"})
    seen: list[EngineEvent] = []
    deadline = time.monotonic() + 10
    while device.loads == loads and time.monotonic() < deadline:
        seen.extend(engine.poll())
        time.sleep(0.02)
    assert device.loads == loads + 1, "the page did not reload"
    pump(engine, kind(EventKind.READY, phone="15550000102"), seen=seen)
    incoming = standin.incoming("15550000102", "15550008888", "after the reload")
    event = pump(engine, kind(EventKind.MESSAGE, id=incoming["id"]), seen=seen)
    assert event.data["body"] == "after the reload" and event.data["fromMe"] is False
    assert event.data["chatId"] == "15550008888@c.us" and event.data["type"] == "text"
    assert not [e for e in seen if e.kind is EventKind.QR]
    assert engine.state is EngineState.READY
    assert engine.check_number("15550001234").exists
    assert not engine.check_number("15550000000").exists


def test_a_resumed_profile_reports_the_acks_its_dead_host_never_took(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine("acks")
    link(engine, standin, "15550000120")
    sent = engine.send_text("15550009998", "did it arrive?", message_id="3EB0AAAA0000000000000120")
    standin.ack(sent.message_id, 3)  # read on the phone: the page emits the ack to its host...
    channel = engine.channel
    assert channel is not None

    def page_emitted_ack() -> bool:
        return any(e.get("type") == "ack" for e in list(channel.queue))

    deadline = time.monotonic() + 10
    while not page_emitted_ack() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert page_emitted_ack(), "the page did not hand the ack over"
    engine.close()  # ...which never takes it: what the page handed over is gone with it
    assert standin.device_for(phone="15550000120").view()["pending"] == 0  # type: ignore[union-attr]

    resumed = make_engine("acks")  # the next host, on the same profile
    seen: list[EngineEvent] = []
    resumed.start()
    pump(resumed, kind(EventKind.ACK, messageId=sent.message_id, ack="read"), seen=seen)
    assert [e.data["ack"] for e in seen if e.kind is EventKind.ACK
            and e.data["messageId"] == sent.message_id] == ["sent", "delivered", "read"]
    assert not [e for e in seen if e.kind is EventKind.QR]


def test_chromium_killed_is_seen_on_the_next_tick_and_resumes_without_a_qr(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000103")
    browser = engine.browser
    assert browser is not None and browser.browser_pid is not None
    os.kill(browser.browser_pid, signal.SIGKILL)
    event = pump(engine, state(EngineState.DISCONNECTED), timeout=5)
    assert "Chromium exited" in event.data["reason"]
    assert not alive(browser.driver_pid)
    seen: list[EngineEvent] = []
    engine.start()
    pump(engine, kind(EventKind.READY, phone="15550000103"), seen=seen)
    assert not [e for e in seen if e.kind is EventKind.QR]


def test_a_renderer_crash_restarts_the_browser(make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000104")
    assert engine.channel is not None and engine.browser is not None
    old_pid = engine.browser.browser_pid
    engine.channel.crash_page()
    event = pump(engine, state(EngineState.DISCONNECTED), timeout=5)
    assert "crashed" in event.data["reason"]
    assert not alive(old_pid)
    engine.start()
    pump(engine, kind(EventKind.READY, phone="15550000104"))


def test_chromedriver_killed_takes_its_orphaned_browser_down_by_pid(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000105")
    browser = engine.browser
    assert browser is not None
    os.kill(browser.driver_pid, signal.SIGKILL)  # type: ignore[arg-type]
    event = pump(engine, state(EngineState.DISCONNECTED), timeout=5)
    assert "chromedriver exited" in event.data["reason"]
    assert not alive(browser.browser_pid)
    assert profiles.browsers_using(profiles.user_data_dir(engine.profile_dir)) == []


def test_a_hung_page_fails_a_send_within_seconds_and_the_browser_is_replaced(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine(command_timeout=3.0)
    link(engine, standin, "15550000106")
    browser = engine.browser
    assert browser is not None
    device = standin.device_for(phone="15550000106")
    assert device is not None
    standin.push(device, {"type": "hang"})
    time.sleep(0.3)
    started = time.monotonic()
    with pytest.raises(EngineCrashed, match="stopped answering"):
        engine.send_text("15550009999", "into the void", message_id="3EB0AAAA0000000000000106")
    took = time.monotonic() - started
    assert took < 8, f"a hang took {took:.1f} s to detect"  # not 4 x the timeout
    assert engine.state is EngineState.DISCONNECTED
    assert not alive(browser.browser_pid) and not alive(browser.driver_pid)
    engine.start()
    pump(engine, kind(EventKind.READY, phone="15550000106"))


def test_a_logout_from_the_phone_kills_the_browser_and_wipes_the_profile(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000107")
    browser = engine.browser
    assert browser is not None
    standin.logout_from_phone("15550000107")
    event = pump(engine, state(EngineState.LOGGED_OUT))
    assert event.data["reason"] == "logged out from the phone"
    assert not alive(browser.browser_pid)
    assert not profiles.user_data_dir(engine.profile_dir).exists()
    # Started again, it needs a new QR.
    engine.start()
    pump(engine, kind(EventKind.QR))


def test_logout_unlinks_on_the_page_then_kills_the_browser_before_wiping(
        make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    link(engine, standin, "15550000108")
    browser = engine.browser
    assert browser is not None
    engine.logout()
    assert engine.state is EngineState.LOGGED_OUT
    assert not alive(browser.browser_pid) and not alive(browser.driver_pid)
    assert not profiles.user_data_dir(engine.profile_dir).exists()
    assert standin.device_for(phone="15550000108") is None  # the "servers" forgot the device


def test_one_profile_one_engine_and_a_foreign_chromium_lock_is_cleared(
        make_engine: MakeEngine, standin: StandIn, tmp_path: Path) -> None:
    data_dir = profiles.user_data_dir(tmp_path / "shared")
    data_dir.mkdir(parents=True)
    # Left by a browser of another container that shared this storage and died.
    os.symlink("another-host-4242", data_dir / "SingletonLock")
    first = make_engine("shared")
    first.start()
    pump(first, kind(EventKind.QR))
    second = make_engine("shared")
    with pytest.raises(EngineError, match="in use by another engine"):
        second.start()
    assert second.state is EngineState.DISCONNECTED
    assert first.state is EngineState.QR
    owner = profiles.singleton_owner(data_dir)
    assert owner is not None and owner[0] != "another-host"


def test_only_localhost_resolves_in_tests(make_engine: MakeEngine, standin: StandIn) -> None:
    engine = make_engine()
    engine.start()
    pump(engine, kind(EventKind.QR))
    assert engine.browser is not None
    outcome = engine.browser.driver.execute_script(
        "return fetch('http://example.com/').then(() => 'reached', e => String(e));")
    assert outcome.startswith("TypeError"), outcome


def test_events_also_arrive_by_polling_the_page_buffer(make_engine: MakeEngine,
                                                       standin: StandIn) -> None:
    engine = make_engine(event_delivery="poll")
    link(engine, standin, "15550000109")
    assert engine.channel is not None and not engine.channel.use_binding
    incoming = standin.incoming("15550000109", "15550007777", "polled")
    event = pump(engine, kind(EventKind.MESSAGE, id=incoming["id"]))
    assert event.data["body"] == "polled"


def test_chromium_gets_its_start_bound_and_page_calls_keep_the_command_timeout(
        tmp_path: Path, chromium: dict[str, str]) -> None:
    """A slow Chromium start (seconds on a busy machine) is not a failed start, while every
    call after it still times out after command_timeout + 2 s."""
    slow = tmp_path / "slow-chromium"  # the real browser, 6 s late: more than 2 + 2 s
    slow.write_text(f'#!/bin/sh\nsleep 6\nexec {chromium["browser"]} "$@"\n')
    slow.chmod(0o755)
    options = SeleniumOptions(executable_path=str(slow), driver_path=chromium["driver"],
                              extra_args=list(CHROMIUM_TEST_ARGS))
    browser = launch(options, tmp_path / "profile", command_timeout=2.0)
    try:
        assert browser.driver.execute_script("return 1 + 1") == 2
        assert browser.driver.command_executor.client_config.timeout == 4 < START_TIMEOUT
    finally:
        browser.kill()
