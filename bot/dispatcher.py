"""The outbox dispatcher: claims due messages, sends them, records what happened.

Any number may run at once (``kabar dispatch`` on several machines, or inside the scheduler
process): each claim is committed before the first request (``bot.outbox.claim_due``), so a row
goes to exactly one dispatcher. Each outcome is recorded in its own short transaction, and one
message failing never holds up the others. Sends are paced to ``dispatch.rate_per_second`` per
dispatcher.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.models import Graduate, utcnow
from bot.outbox import claim_due, mark_failed, mark_retry, mark_sent, recover_stale, release_claims
from bot.transports import (
    NoTemplate,
    OutboundRequest,
    Transport,
    TransportError,
    build_transport,
    request_for,
)

log = logging.getLogger(__name__)

# How often a running dispatcher looks for rows abandoned by a crashed one.
RECOVER_EVERY = timedelta(seconds=60)
# A claimed batch should take no longer than this to send at the configured rate, so that rows
# do not sit claimed (and unsendable by others) for long.
BATCH_SECONDS = 30
# Tries to record an outcome when the database hiccups after a successful send.
RECORD_TRIES = 3


def default_worker_id() -> str:
    """``host:pid:random``: tells staff and logs which dispatcher claimed a row."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Pacer:
    """At most ``rate`` sends per second: each send waits until 1/rate after the previous one.

    ``monotonic`` and ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(self, rate: float, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0")
        self.interval = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self._monotonic()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._monotonic()
        self._next = max(now, self._next or now) + self.interval


class Dispatcher:
    """Sends the outbox through a transport. ``run_once`` for a pass, ``run_forever`` to serve."""

    # Pause after a failed pass (database down) before trying again.
    error_pause_seconds = 5.0

    def __init__(self, settings: Settings, db: Database, transport: Transport | None = None,
                 worker_id: str | None = None, clock: Callable[[], datetime] = utcnow, *,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.db = db
        self.transport = transport if transport is not None else build_transport(settings)
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.pacer = Pacer(settings.dispatch.rate_per_second, monotonic=monotonic, sleep=sleep)
        rate_batch = max(1, math.ceil(settings.dispatch.rate_per_second * BATCH_SECONDS))
        self.batch_size = max(1, min(settings.dispatch.batch_size, rate_batch))
        self._last_recover: datetime | None = None

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self, limit: int | None = None, stop_event: threading.Event | None = None) -> int:
        """Send what is due now (at most ``limit`` claims); return how many the provider took."""
        sent = 0
        claimed_total = 0
        while limit is None or claimed_total < limit:
            if stop_event is not None and stop_event.is_set():
                break
            size = self.batch_size if limit is None else min(self.batch_size,
                                                             limit - claimed_total)
            requests = self._claim(size)
            if not requests:
                break
            claimed_total += len(requests)
            sent += self._send_batch(requests, stop_event)
        return sent

    def _claim(self, size: int) -> list[OutboundRequest]:
        with self.db.session() as session:
            now = self.clock()
            messages = claim_due(session, size, self.worker_id, now)
            # The graduates' windows decide template or body: load them in one query (the
            # rows' ``graduate`` then comes from the session without another).
            graduate_ids = {m.graduate_id for m in messages if m.graduate_id is not None}
            if graduate_ids:
                session.scalars(select(Graduate).where(Graduate.id.in_(graduate_ids))).all()
            # Built while the rows are at hand; the session is gone during the sends.
            requests = []
            for message in messages:
                try:
                    requests.append(request_for(message, self.settings, now=now))
                except NoTemplate as exc:
                    # Refused before sending: staff see what to configure on the row.
                    log.warning("message %s to %s (%s) not sent: %s", message.id,
                                message.phone, message.kind, exc)
                    mark_failed(session, message.id, exc.code, exc.message)
            return requests

    def _send_batch(self, requests: list[OutboundRequest],
                    stop_event: threading.Event | None) -> int:
        sent = 0
        for index, req in enumerate(requests):
            if stop_event is not None and stop_event.is_set():
                self._release([r.message_id for r in requests[index:]])
                break
            if self._send_one(req):
                sent += 1
        if requests:
            log.info("dispatcher %s: %d of %d messages accepted", self.worker_id, sent,
                     len(requests))
        return sent

    def _send_one(self, req: OutboundRequest) -> bool:
        """Send one claimed message and record the outcome; True when the provider took it."""
        self.pacer.wait()
        try:
            result = self.transport.send(req)
        except TransportError as exc:
            if exc.retryable:
                log.warning("message %s to %s: %s (will retry)", req.message_id, req.to, exc)
                self._record(mark_retry, req.message_id, exc, self.clock(),
                             max_attempts=self.settings.dispatch.max_attempts)
            else:
                log.warning("message %s to %s failed: %s (code %s)", req.message_id, req.to,
                            exc, exc.code)
                self._record(mark_failed, req.message_id, exc.code, exc.message)
            return False
        except Exception as exc:  # a transport bug must not stop the other messages
            log.exception("message %s to %s: unexpected error from the %s transport",
                          req.message_id, req.to, getattr(self.transport, "name", "?"))
            self._record(mark_retry, req.message_id, exc, self.clock(),
                         max_attempts=self.settings.dispatch.max_attempts)
            return False
        log.debug("message %s to %s: %s %s", req.message_id, req.to, result.sid, result.status)
        self._record(mark_sent, req.message_id, result.sid, result.status,
                     content_sid=req.content_sid, now=self.clock())
        return True

    def _record(self, mark: Callable, *args, **kwargs) -> None:
        """Run one ``mark_*`` in its own transaction, retrying a little if the database fails.

        If it still fails the row stays SENDING; ``recover_stale`` finds it after the lease.
        """
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                with self.db.session() as session:
                    mark(session, *args, **kwargs)
                return
            except Exception:
                if attempt == RECORD_TRIES:
                    log.exception("dispatcher %s: could not record %s%r; the row stays "
                                  "sending until it is recovered", self.worker_id,
                                  mark.__name__, args)
                    return
                log.warning("dispatcher %s: recording %s failed, trying again",
                            self.worker_id, mark.__name__, exc_info=True)
                time.sleep(0.2 * attempt)

    def _release(self, message_ids: list[int]) -> None:
        try:
            with self.db.session() as session:
                released = release_claims(session, message_ids)
            log.info("dispatcher %s: gave back %d unsent messages", self.worker_id, released)
        except Exception:
            log.exception("dispatcher %s: could not give back messages %s; they are recovered "
                          "after the lease", self.worker_id, message_ids)

    def recover(self) -> list[int]:
        """Return rows abandoned by a crashed dispatcher to the outbox (``recover_stale``)."""
        with self.db.session() as session:
            return recover_stale(session, self.clock(),
                                 max_attempts=self.settings.dispatch.max_attempts)

    # --- serving ------------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event | None = None) -> None:
        """Dispatch until ``stop_event`` is set (or Ctrl-C), idling between empty passes.

        Database errors are logged and retried after a pause; they never end the loop.
        """
        stop = stop_event or threading.Event()
        idle = self.settings.dispatch.poll_interval_seconds
        error_pause = self.error_pause_seconds
        log.info("dispatcher %s started: %s transport, at most %g messages/s",
                 self.worker_id, getattr(self.transport, "name", "?"),
                 self.settings.dispatch.rate_per_second)
        try:
            while not stop.is_set():
                try:
                    self._maybe_recover()
                    sent = self.run_once(stop_event=stop)
                except Exception:
                    log.exception("dispatcher %s: pass failed; trying again in %gs",
                                  self.worker_id, error_pause)
                    stop.wait(error_pause)
                    continue
                if sent == 0:
                    stop.wait(idle)
        except KeyboardInterrupt:
            log.info("dispatcher %s interrupted", self.worker_id)
        log.info("dispatcher %s stopped", self.worker_id)

    def _maybe_recover(self) -> None:
        now = self.clock()
        if self._last_recover is None or now - self._last_recover >= RECOVER_EVERY:
            self._last_recover = now
            recovered = self.recover()
            if recovered:
                log.warning("dispatcher %s: %d abandoned messages back in the outbox",
                            self.worker_id, len(recovered))
