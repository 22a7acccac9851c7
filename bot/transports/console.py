"""The console transport: prints each message (``→ +62…: body``) instead of sending it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Collection
from datetime import datetime
from typing import TextIO

from bot.transports import OutboundRequest, SendResult, fake_sid


class ConsoleTransport:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, req: OutboundRequest) -> SendResult:
        line = f"→ {req.to}: {req.body}"
        if req.content_sid:
            line += f"  [template {req.content_sid}]"
        stream = self._stream or sys.stdout  # looked up late, so pytest's capture sees it
        with self._lock:
            print(line, file=stream, flush=True)
        return SendResult(sid=fake_sid(), status="sent")

    def find_sent(self, req: OutboundRequest, since: datetime, *,
                  exclude: Collection[str] = ()) -> SendResult | None:
        """Nothing keeps a record of printed lines: a send whose outcome is unknown is redone."""
        return None
