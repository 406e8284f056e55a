"""Media benchmarks (issue 12), run by scripts/bench/run.py (section ``media``):

- 100 kB image sends/s at 8 clients, beside send-text at 8 clients in the same seconds;
- peak RSS of the API, the worker (media queue) and the session host while 10 clients send a
  15 MB document each (inline base64, and by URL from a local file server), beside the same
  with 1.5 MB documents: how much the peak grows with the file size;
- time from an incoming 5 MB video on the mock engine (dropped into its mock-network inbox,
  as another phone does) to its ``message.received`` at a local receiver.
"""
from __future__ import annotations

import base64
import os
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

IMAGE_BYTES = 100 * 1024


def jpeg_like(size: int) -> bytes:
    """A JPEG header (what the type check reads) and random bytes: stored as image/jpeg."""
    head = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return head + os.urandom(size - len(head))


def pdf_like(size: int) -> bytes:
    head = b"%PDF-1.4\n"
    return head + os.urandom(size - len(head))


def mp4_like(size: int) -> bytes:
    box = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
    return box + os.urandom(size - len(box))


class Files:
    """Serves files from memory on 127.0.0.1 (the URL sends' origin)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                body = files.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                view = memoryview(body)
                for start in range(0, len(body), 1 << 20):
                    self.wfile.write(view[start:start + (1 << 20)])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def image_rate(b: Any, load: Any, seconds: float) -> dict[str, Any]:
    """8 clients of 100 kB image sends and 8 of send-text, at the same time."""
    b.ready_session("mediabench")
    image = base64.b64encode(jpeg_like(IMAGE_BYTES)).decode()
    url = f"{b.base}/sessions/mediabench/messages/"
    results: dict[str, Any] = {}

    def image_send(http: requests.Session, i: int, n: int) -> None:
        # A new file each time would measure the disk; the same bytes are stored once.
        reply = http.post(url + "send-image", json={"chatId": "15551230011", "base64": image,
                                                   "caption": f"c{i} n{n}"}, timeout=60)
        if reply.status_code != 201:
            raise RuntimeError(reply.status_code, reply.text[:200])

    def text_send(http: requests.Session, i: int, n: int) -> None:
        reply = http.post(url + "send-text", json={"chatId": "15551230012", "text": f"c{i} n{n}"},
                          timeout=60)
        if reply.status_code != 201:
            raise RuntimeError(reply.status_code, reply.text[:200])

    pids = b.platform_pids()
    both = [threading.Thread(target=lambda: results.__setitem__(
                "image_100kb", load(image_send, 8, seconds, pids, b.api_session))),
            threading.Thread(target=lambda: results.__setitem__(
                "text_beside", load(text_send, 8, seconds, pids, b.api_session)))]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    return results


def big_documents(b: Any, peak_rss: Any, named: dict[str, int], size: int, clients: int,
                  by_url: bool, files: Files | None) -> dict[str, Any]:
    """``clients`` clients send one ``size``-byte document each at once; peak RSS meanwhile."""
    bodies = []
    for i in range(clients):
        data = pdf_like(size)
        if by_url:
            assert files is not None
            path = f"/doc-{size}-{i}-{time.time_ns()}.pdf"
            FILES[path] = data
            bodies.append({"chatId": "15551230013", "url": files.base + path})
        else:
            bodies.append({"chatId": "15551230013", "base64": base64.b64encode(data).decode(),
                           "filename": f"doc{i}.pdf"})
        del data
    statuses: list[int] = []
    started = time.perf_counter()
    with peak_rss(named) as peak:
        def send(body: dict[str, Any]) -> None:
            http = b.api_session()
            statuses.append(http.post(f"{b.base}/sessions/mediabench/messages/send-document",
                                      json=body, timeout=300).status_code)
        threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.0)  # the last sends finish on the host after the API answered 202
    bodies.clear()
    return {"size_bytes": size, "clients": clients, "by": "url" if by_url else "base64",
            "statuses": sorted(statuses), "seconds": round(time.perf_counter() - started, 2),
            "peak": peak.rows()}


FILES: dict[str, bytes] = {}


def incoming_video(b: Any, size: int = 5 * 1024 * 1024, repeats: int = 5) -> dict[str, Any]:
    """An incoming ``size``-byte video on the mock (inbox file + the network's copy of the
    file) to its message.received at a local receiver."""
    from receiver import Receiver

    from engines.mock import write_json_atomic

    receiver = Receiver()
    session = b.ready_session("mediain")
    reply = b.call("POST", "/sessions/mediain/webhooks",
                   json={"url": receiver.url, "events": ["message.received"]})
    assert reply.status_code == 201, reply.text
    network = b.work / "sessions" / "_mocknet"
    inbox = network / session["phone"] / "inbox"
    media_dir = network / "_media"
    media_dir.mkdir(parents=True, exist_ok=True)
    latencies = []
    for n in range(repeats):
        data = mp4_like(size)
        path = media_dir / f"bench-video-{n}"
        path.write_bytes(data)
        started = time.perf_counter()
        write_json_atomic(inbox / f"{time.time_ns():020d}-v{n:04d}.json", {
            "id": f"BENCHVID{n:06d}", "from": "15559990001", "to": session["phone"], "body": "",
            "timestamp": int(time.time()), "type": "video", "caption": f"video {n}",
            "media": {"mimetype": "video/mp4", "filename": None, "path": str(path)}}, durable=False)

        def arrived() -> float | None:
            with receiver.lock:
                for when, body in receiver.arrivals:
                    if body.get("data", {}).get("caption") == f"video {n}":
                        return when
            return None

        deadline = time.monotonic() + 60
        when = None
        while when is None and time.monotonic() < deadline:
            when = arrived()
            time.sleep(0.005)
        if when is None:
            raise RuntimeError(f"video {n} never reached the receiver")
        latencies.append(round((when - started) * 1000, 1))
    receiver.stop()
    return {"size_bytes": size, "latencies_ms": latencies,
            "median_ms": sorted(latencies)[len(latencies) // 2]}


def run(b: Any, load: Any, peak_rss: Any, seconds: float, quick: bool) -> dict[str, Any]:
    named = {r: b.procs[r].pid for r in ("api", "host", "worker") if r in b.procs}
    out: dict[str, Any] = {"image_rate": image_rate(b, load, seconds)}
    files = Files(FILES)
    try:
        # The figure is 10 clients x 15 MB; a quick run (CI) uses small files.
        small, big, clients = (300_000, 1_500_000, 4) if quick else (1_500_000, 15_000_000, 10)
        # By URL first: a process keeps the memory it once used (glibc), so the inline runs,
        # which cost the API memory, would hide the URL runs' own peak.
        out["documents"] = [
            big_documents(b, peak_rss, named, small, clients, True, files),
            big_documents(b, peak_rss, named, big, clients, True, files),
            big_documents(b, peak_rss, named, small, clients, False, None),
            big_documents(b, peak_rss, named, big, clients, False, None),
        ]
    finally:
        files.stop()
        FILES.clear()
    out["incoming_video"] = incoming_video(b, repeats=3 if quick else 5)
    return out


def markdown(m: dict[str, Any]) -> list[str]:
    lines = ["### Media (issue 12)", "",
             "| what | clients | req/s | p50 ms | p95 ms | errors | server CPU |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, label in (("image_100kb", "send-image 100 kB"), ("text_beside", "send-text beside it")):
        row = m["image_rate"][key]
        lines.append(f"| {label} | {row['clients']} | {row['per_s']} | {row['p50_ms']} | {row['p95_ms']} | "
                     f"{row['errors']} | {row['server_cpu_cores']} |")
    lines += ["", "Peak RSS (MiB) while clients send one document each at once (sum of a role's "
              "processes):", "",
              "| by | clients | size | statuses | api | worker | host |", "|---|---:|---:|---|---:|---:|---:|"]
    for run_ in m["documents"]:
        peak: dict[str, float] = {}
        for row in run_["peak"]:
            role = row["process"].split(" ")[0]
            peak[role] = peak.get(role, 0.0) + row["rss_mib"]
        statuses = ",".join(f"{s}" for s in sorted(set(run_["statuses"])))
        lines.append(f"| {run_['by']} | {run_['clients']} | {run_['size_bytes'] / 1e6:g} MB | {statuses} | "
                     f"{peak.get('api', 0):.0f} | {peak.get('worker', 0):.0f} | {peak.get('host', 0):.0f} |")
    video = m["incoming_video"]
    lines += ["", f"Incoming {video['size_bytes'] / 2**20:g} MiB video on the mock → message.received at a "
              f"local receiver: {video['latencies_ms']} ms (median {video['median_ms']} ms).", ""]
    return lines
