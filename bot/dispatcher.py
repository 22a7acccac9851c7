"""The outbox dispatcher: claims due messages, sends them, records what happened.

Any number may run at once (``kabar dispatch`` on several machines, or inside the scheduler
process): each claim is committed before the first request (``bot.outbox.claim_due``), so a row
goes to exactly one dispatcher. Each outcome is recorded in its own short transaction, and one
message failing never holds up the others. Sends are paced to ``dispatch.rate_per_second`` per
dispatcher.

A message whose outcome is unknown is settled against the provider's own record before it can
go out again (``settle``, at the start of every pass): one left SENDING past
``dispatch.claim_lease_seconds`` by a dispatcher that died, or one whose request may have
reached Twilio without an answer coming back (connection lost or timed out after sending). If
Twilio has it, the row gets that SID; if not, it is sent again as a retry. Errors that are
definite (429, 5xx, a connection that was never made) are retried with backoff directly.
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
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.consent import TWILIO_UNSUBSCRIBED, blocked_by_provider
from bot.db import Database
from bot.inbox import handle_waiting
from bot.models import Graduate, Message, utcnow
from bot.outbox import (
    claim_due,
    claim_unsettled,
    defer_unsettled,
    mark_failed,
    mark_not_sent,
    mark_retry,
    mark_sent,
    mark_unknown,
    recorded_sids,
    release_claims,
)
from bot.transports import (
    NotSendable,
    OutboundRequest,
    Transport,
    TransportError,
    build_transport,
    find_sent,
    request_for,
)

log = logging.getLogger(__name__)

# A claimed batch should take no longer than this to send at the configured rate, so that rows
# do not sit claimed (and unsendable by others) for long; nor longer than a quarter of the claim
# lease, so that no row of a live dispatcher's batch is taken for abandoned.
BATCH_SECONDS = 30
# Tries to record an outcome when the database hiccups after a successful send.
RECORD_TRIES = 3


def fail_permanently(session: Session, message_id: int, code: str | None, reason: str, *,
                     now: datetime | None = None) -> Message:
    """A send the provider refused for good: the row fails with its code, and a refusal as
    unsubscribed (Twilio 21610) opts the graduate out (``bot.consent``). The caller commits."""
    message = mark_failed(session, message_id, code, reason)
    if code == TWILIO_UNSUBSCRIBED:
        blocked_by_provider(session, message, f"Twilio {code}: {reason}", now=now)
    return message


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
        self.lease = timedelta(seconds=settings.dispatch.claim_lease_seconds)
        batch_seconds = min(BATCH_SECONDS, settings.dispatch.claim_lease_seconds / 4)
        rate_batch = max(1, math.ceil(settings.dispatch.rate_per_second * batch_seconds))
        self.batch_size = max(1, min(settings.dispatch.batch_size, rate_batch))

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self, limit: int | None = None, stop_event: threading.Event | None = None) -> int:
        """Send what is due now (at most ``limit`` claims); return how many the provider took.

        Each round first settles the due messages whose outcome is unknown (``settle``); one
        found at the provider counts as taken.
        """
        sent = 0
        claimed_total = 0
        while limit is None or claimed_total < limit:
            if stop_event is not None and stop_event.is_set():
                break
            settled, found = self.settle(stop_event)
            sent += found
            size = self.batch_size if limit is None else min(self.batch_size,
                                                             limit - claimed_total)
            requests = self._claim(size)
            if not requests:
                if settled:
                    continue  # more may be waiting to be settled
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
                except NotSendable as exc:
                    # Refused before sending: staff see what to configure on the row.
                    log.warning("message %s to %s (%s) refused: %s", message.id,
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
            if exc.maybe_sent:
                log.warning("message %s to %s: %s (it may have reached the provider: it is "
                            "looked up there before it is sent again)", req.message_id, req.to,
                            exc)
                self._record(mark_unknown, req.message_id, exc, self.clock())
            elif exc.retryable:
                log.warning("message %s to %s: %s (will retry)", req.message_id, req.to, exc)
                self._record(mark_retry, req.message_id, exc, self.clock(),
                             max_attempts=self.settings.dispatch.max_attempts)
            else:
                log.warning("message %s to %s failed: %s (code %s)", req.message_id, req.to,
                            exc, exc.code)
                self._record(fail_permanently, req.message_id, exc.code, exc.message,
                             now=self.clock())
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

        If it still fails the row stays SENDING; ``settle`` finds it after the lease.
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

    # --- messages whose outcome is unknown -----------------------------------------------------

    def settle(self, stop_event: threading.Event | None = None) -> tuple[int, int]:
        """Settle due messages whose outcome is unknown; return (how many, how many found).

        Claims them (``claim_unsettled``) and asks the transport for each
        (``Transport.find_sent``) from the time of the attempt in doubt: found, the row is
        marked sent with the provider's SID; not found, it goes back to the outbox as a retry
        (failed once out of attempts); the provider cannot be asked, it is asked again after a
        backoff. Nothing is sent here.
        """
        now = self.clock()
        with self.db.session() as session:
            messages = claim_unsettled(session, self.batch_size, self.worker_id, now,
                                       lease=self.lease)
            if not messages:
                return 0, 0
            graduate_ids = {m.graduate_id for m in messages if m.graduate_id is not None}
            if graduate_ids:
                session.scalars(select(Graduate).where(Graduate.id.in_(graduate_ids))).all()
            # What the attempt in doubt sent, decided as it was at that claim.
            unsettled = [(self._request_as_sent(m), m.claimed_at) for m in messages]
        found = 0
        for index, (req, since) in enumerate(unsettled):
            if stop_event is not None and stop_event.is_set():
                self._give_back_unsettled([r.message_id for r, _ in unsettled[index:]])
                break
            if self._settle_one(req, since):
                found += 1
        log.info("dispatcher %s: %d messages with an unknown outcome settled, %d of them found "
                 "at the provider", self.worker_id, len(unsettled), found)
        return len(unsettled), found

    def _request_as_sent(self, message: Message) -> OutboundRequest:
        try:
            return request_for(message, self.settings, now=message.claimed_at)
        except NotSendable:
            # Refused at that claim too, so never sent; the body is what it would have carried.
            return OutboundRequest(message_id=message.id, to=message.phone, body=message.body)

    def _settle_one(self, req: OutboundRequest, since: datetime) -> bool:
        """Look one unsettled message up at the provider and record it; True when found."""
        self.pacer.wait()
        try:
            with self.db.session() as session:
                known = recorded_sids(session, req.to, except_id=req.message_id)
            result = find_sent(self.transport, req, since, exclude=known)
        except Exception as exc:  # the provider (or the database) cannot be asked now
            log.warning("message %s to %s: could not check with the %s transport whether it was "
                        "sent (%s); asking again later", req.message_id, req.to,
                        getattr(self.transport, "name", "?"), exc)
            self._record(defer_unsettled, req.message_id, self.clock())
            return False
        if result is None:
            log.info("message %s to %s: not at the provider; sending it again", req.message_id,
                     req.to)
            self._record(mark_not_sent, req.message_id, self.clock(),
                         max_attempts=self.settings.dispatch.max_attempts)
            return False
        log.info("message %s to %s: the provider has it as %s; not sent again", req.message_id,
                 req.to, result.sid)
        self._record(mark_sent, req.message_id, result.sid, result.status,
                     content_sid=req.content_sid, now=self.clock())
        return True

    def _give_back_unsettled(self, message_ids: list[int]) -> None:
        now = self.clock()
        for message_id in message_ids:
            self._record(defer_unsettled, message_id, now, delay=timedelta(0))

    # --- serving ------------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event | None = None) -> None:
        """Handle the inbox and dispatch the outbox until ``stop_event`` is set (or Ctrl-C),
        idling between empty passes.

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
                    # Incoming first: their replies then go out in the same pass.
                    handled = handle_waiting(self.db, self.settings, clock=self.clock)
                    sent = self.run_once(stop_event=stop) + handled
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
