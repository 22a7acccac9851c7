"""Real HTTP on loopback: serve a Flask app in a thread for tests that need a live server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) with threads; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def wait_for(condition: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.02, message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@contextmanager
def gunicorn_running(env: dict[str, str], cwd, *, workers: int, timeout: int) -> Iterator[str]:
    """``gunicorn -w <workers> "bot:create_app()"`` on a free loopback port with ``env``, its
    log in ``cwd``; yields its base URL once ``/healthz`` answers, and stops it afterwards."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (Path(cwd) / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-w", str(workers), "-b",
         f"127.0.0.1:{port}", "--timeout", str(timeout), "bot:create_app()"], cwd=cwd, env=env,
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=60, interval=0.2, message="gunicorn to answer /healthz")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
