"""The outbox dispatcher: claims due messages, sends them, records what happened.

Any number may run at once (``kabar dispatch`` on several machines, or inside the scheduler
process): each claim is committed before the first request (``bot.outbox.claim_due``), so a row
goes to exactly one dispatcher. One message failing never holds up the others.

Each dispatcher keeps up to ``dispatch.concurrency`` requests in flight, on a pool of threads
(``concurrent.futures.ThreadPoolExecutor``) around the transport's ordinary ``send``. Threads
rather than the twilio SDK's ``AsyncTwilioHttpClient`` and ``create_async``: the transports
(twilio, simulator, console, and ``find_sent`` for settling) are synchronous and shared with the
webhook and the command line, so threads keep one code path for all of them; the synchronous
twilio ``Client`` with its pooled requests session is safe for concurrent sends; and the work is
waiting on the network, during which a thread releases the GIL. A request sent on one thread is
as fast as on an event loop; the database work (claiming, recording) stays on two threads.

How a pass goes (``run_once``):

- the main thread claims a batch (committed, rows SENDING) whenever fewer claimed rows wait
  than requests may be in flight, so the pipe never drains while Twilio answers;
- it takes a send slot from the deployment-wide budget (``bot.pacing``: ``rate_per_second`` is
  for all dispatchers together), waits for it, and hands the request to a sending thread;
  a graduate's next message waits until the previous one to the same number has been answered,
  so their messages reach Twilio in order;
- the sending thread calls ``transport.send`` and passes the outcome to the recorder thread,
  which commits finished outcomes together every few milliseconds (one transaction, each row
  its own UPDATE with its own SID); if such a batch cannot be recorded, each row is recorded
  in its own transaction instead. A row whose outcome could not be recorded stays SENDING and
  is settled after the lease, like one of a dispatcher that died;
- on stop, nothing new is sent, requests in flight finish and are recorded, and claimed rows
  not yet sent are given back (``release_claims``).

A 429 from Twilio pauses every dispatcher until its ``Retry-After`` has passed (``Budget.pause``)
and the message is retried with backoff.

A message whose outcome is unknown is settled against the provider's own record before it can
go out again (``settle``, at the start of every pass and every few seconds during a long one):
one left SENDING past ``dispatch.claim_lease_seconds`` by a dispatcher that died, or one whose
request may have reached Twilio without an answer coming back (connection lost or timed out
after sending). If Twilio has it, the row gets that SID; if not, it is sent again as a retry.
Errors that are definite (429, 5xx, a connection that was never made) are retried with backoff
directly. Settling is sequential: it is rare, and each lookup is one request.

A serving dispatcher (``run_forever``) reports itself in ``processes`` every few seconds
(``bot.processes.beat``: requests in flight, messages sent, concurrency, rate, last error), for
``/healthz`` and ``kabar status``, and removes its row when it stops cleanly.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import processes
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
    mark_sent_many,
    mark_unknown,
    recorded_sids,
    release_claims,
)
from bot.pacing import DEFAULT_RETRY_AFTER, Budget, SlotTaker, block_size
from bot.processes import BEAT_EVERY
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


# A recorder commits finished outcomes together once this many are waiting, or this often.
RECORD_BATCH = 32
RECORD_EVERY_SECONDS = 0.05
# During a long pass, messages whose outcome is unknown are settled this often.
SETTLE_EVERY_SECONDS = 5.0
# Longest single sleep while waiting for a slot or a pause, so a stop is seen soon.
WAIT_STEP_SECONDS = 0.2

# Outcomes a sending thread hands to the recorder.
_SENT, _RETRY, _UNKNOWN, _FAILED, _UNSENT = "sent", "retry", "unknown", "failed", "unsent"


class _Recorder:
    """Records the outcomes of sends on its own thread, in short batched transactions."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="dispatch-recorder", daemon=True)
        self.thread.start()

    def put(self, outcome: tuple) -> None:
        self.queue.put(outcome)

    def close(self) -> None:
        """Record everything handed over so far, then end the thread."""
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        done = False
        while not done:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + RECORD_EVERY_SECONDS
            while len(batch) < RECORD_BATCH:
                left = deadline - time.monotonic()
                try:
                    item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            try:
                self.dispatcher._record_outcomes(batch)
            except Exception:  # never lose the thread: the rows are settled after the lease
                log.exception("dispatcher %s: recording outcomes failed",
                              self.dispatcher.worker_id)


class Dispatcher:
    """Sends the outbox through a transport. ``run_once`` for a pass, ``run_forever`` to serve.

    ``clock`` is the time rows are stamped with; ``pace_clock`` and ``sleep`` are what pacing
    waits on (seconds since the epoch, shared with other dispatchers through ``bot.pacing``);
    tests inject fake ones. ``monotonic`` is the old name of ``pace_clock``.
    """

    # Pause after a failed pass (database down) before trying again.
    error_pause_seconds = 5.0

    def __init__(self, settings: Settings, db: Database, transport: Transport | None = None,
                 worker_id: str | None = None, clock: Callable[[], datetime] = utcnow, *,
                 sleep: Callable[[float], None] = time.sleep,
                 pace_clock: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.db = db
        self.transport = transport if transport is not None else build_transport(settings)
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.concurrency = settings.dispatch.concurrency
        self.rate = settings.dispatch.rate_per_second
        self._sleep = sleep
        self.budget = Budget(db, self.rate, clock=pace_clock or monotonic or time.time)
        self.slots = SlotTaker(self.budget, block_size(self.rate, self.concurrency))
        self.lease = timedelta(seconds=settings.dispatch.claim_lease_seconds)
        batch_seconds = min(BATCH_SECONDS, settings.dispatch.claim_lease_seconds / 4)
        rate_batch = max(1, math.ceil(self.rate * batch_seconds))
        self.batch_size = max(1, min(settings.dispatch.batch_size, rate_batch))
        # Claim again once fewer claimed rows wait than this; claim this many at a time.
        self.refill_below = max(1, min(self.concurrency, self.batch_size))
        self.claim_size = max(1, min(self.batch_size, 2 * self.concurrency))
        self._lock = threading.Condition()
        self._in_flight = 0
        self._numbers_in_flight: set[str] = set()
        self._sent_total = 0
        self._paused_until = 0.0
        self._pause_generation = 0
        self._last_error: str | None = None
        self._beating = False
        self._last_beat = 0.0

    # --- one pass -----------------------------------------------------------------------------

    def run_once(self, limit: int | None = None, stop_event: threading.Event | None = None) -> int:
        """Send what is due now (at most ``limit`` claims); return how many the provider took.

        Messages whose outcome is unknown are settled first (``settle``), and again every
        SETTLE_EVERY_SECONDS of a long pass; one found at the provider counts as taken.
        """
        stop = stop_event or threading.Event()
        found = 0
        sent_before = self._sent_total
        pending: deque[OutboundRequest] = deque()
        claimed_total = 0
        exhausted = False
        settled, found_now = self.settle(stop)
        found += found_now
        last_settle = time.monotonic()
        recorder = _Recorder(self)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dispatch-send")
        try:
            while not stop.is_set():
                self._maybe_beat(pending)
                room = limit is None or claimed_total < limit
                if not exhausted and room and len(pending) < self.refill_below:
                    if time.monotonic() - last_settle >= SETTLE_EVERY_SECONDS:
                        claimed_total -= self._give_back(pending)
                        settled, found_now = self.settle(stop)
                        found += found_now
                        last_settle = time.monotonic()
                    size = self.claim_size if limit is None else min(self.claim_size,
                                                                     limit - claimed_total)
                    claimed, requests = self._claim(size)
                    claimed_total += claimed
                    pending.extend(requests)
                    if not claimed:
                        if settled:  # rows settled as not sent are due again: settle more
                            claimed_total -= self._give_back(pending)
                            settled, found_now = self.settle(stop)
                            found += found_now
                            last_settle = time.monotonic()
                            continue
                        exhausted = True
                    elif not requests:
                        continue  # all refused before sending; there may be more
                if not pending:
                    if exhausted or not room:
                        break
                    continue
                with self._lock:
                    index = self._next_sendable(pending)
                    if index is None:  # the pool is full, or every one waits for its number
                        self._lock.wait(WAIT_STEP_SECONDS)
                        continue
                if stop.is_set() or not self._wait_for_slot(stop):
                    break
                req = pending[index]
                del pending[index]
                with self._lock:
                    self._in_flight += 1
                    self._numbers_in_flight.add(req.to)
                pool.submit(self._send_one, req, recorder, stop)
        finally:
            if pending:
                self._release([r.message_id for r in pending])
            pool.shutdown(wait=True)
            recorder.close()
            self._maybe_beat(pending, force=self._beating)
        sent = self._sent_total - sent_before
        if claimed_total:
            log.info("dispatcher %s: %d of %d messages accepted", self.worker_id, sent,
                     claimed_total)
        return sent + found

    def _next_sendable(self, pending: deque[OutboundRequest]) -> int | None:
        """Where in ``pending`` the next request to send is (the caller holds the lock): the
        first whose number has no request in flight, so one graduate's messages (a thank-you,
        then the next question) reach Twilio one after the other, in their order. None when
        the pool is full or every waiting message's number is busy."""
        if self._in_flight >= self.concurrency:
            return None
        for index, req in enumerate(pending):
            if req.to not in self._numbers_in_flight:
                return index
        return None

    def _give_back(self, pending: deque[OutboundRequest]) -> int:
        """Release the claimed rows not yet sent, before settling: settling takes a while (one
        lookup after another) and must not leave them claimed past the lease, where this very
        dispatcher's settling, or another's, would take them for abandoned."""
        if not pending:
            return 0
        count = len(pending)
        self._release([r.message_id for r in pending])
        pending.clear()
        return count

    def _claim(self, size: int) -> tuple[int, list[OutboundRequest]]:
        """Claim up to ``size`` due rows; (how many were claimed, the requests to send)."""
        with self.db.session() as session:
            now = self.clock()
            messages = claim_due(session, size, self.worker_id, now)
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
            return len(messages), requests

    # --- pacing -------------------------------------------------------------------------------

    def _wait_for_slot(self, stop: threading.Event) -> bool:
        """Wait for this dispatcher's next send slot (and out any pause); False when stopped."""
        clock = self.budget.clock
        while not stop.is_set():
            with self._lock:
                paused_until, generation = self._paused_until, self._pause_generation
            if paused_until > clock():
                self._sleep(min(paused_until - clock(), WAIT_STEP_SECONDS))
                continue
            slot = self.slots.take()
            while not stop.is_set():
                with self._lock:
                    if self._pause_generation != generation:
                        break  # a 429 came while waiting: this slot is void
                wait = slot - clock()
                if wait <= 0:
                    return True
                self._sleep(min(wait, WAIT_STEP_SECONDS))
        return False

    def _pause(self, exc: TransportError) -> None:
        """Twilio said to slow down: every dispatcher pauses for its Retry-After."""
        try:
            until = self.budget.pause(exc.retry_after)
        except Exception:
            log.warning("dispatcher %s: could not pause the shared budget; pausing here only",
                        self.worker_id, exc_info=True)
            until = self.budget.clock() + (exc.retry_after or DEFAULT_RETRY_AFTER)
        with self._lock:
            if until > self._paused_until:
                self._paused_until = until
            self._pause_generation += 1
            self.slots.invalidate()

    # --- one send (on a sending thread) ---------------------------------------------------------

    def _send_one(self, req: OutboundRequest, recorder: _Recorder,
                  stop: threading.Event) -> None:
        try:
            recorder.put(self._send(req, stop))
        finally:
            with self._lock:
                self._in_flight -= 1
                self._numbers_in_flight.discard(req.to)
                self._lock.notify_all()

    def _send(self, req: OutboundRequest, stop: threading.Event) -> tuple:
        """Send one claimed message; the outcome for the recorder."""
        if stop.is_set():
            return (_UNSENT, req)
        try:
            result = self.transport.send(req)
        except TransportError as exc:
            self._last_error = f"{self.clock().isoformat(timespec='seconds')} {exc.message}"
            if exc.maybe_sent:
                log.warning("message %s to %s: %s (it may have reached the provider: it is "
                            "looked up there before it is sent again)", req.message_id, req.to,
                            exc)
                return (_UNKNOWN, req, exc, self.clock())
            if exc.retryable:
                log.warning("message %s to %s: %s (will retry)", req.message_id, req.to, exc)
                if exc.rate_limited:
                    self._pause(exc)
                return (_RETRY, req, exc, self.clock())
            log.warning("message %s to %s failed: %s (code %s)", req.message_id, req.to,
                        exc, exc.code)
            return (_FAILED, req, exc, self.clock())
        except Exception as exc:  # a transport bug must not stop the other messages
            log.exception("message %s to %s: unexpected error from the %s transport",
                          req.message_id, req.to, getattr(self.transport, "name", "?"))
            self._last_error = f"{self.clock().isoformat(timespec='seconds')} {exc}"
            return (_RETRY, req, exc, self.clock())
        log.debug("message %s to %s: %s %s", req.message_id, req.to, result.sid, result.status)
        with self._lock:
            self._sent_total += 1
        return (_SENT, req, result, self.clock())

    # --- recording (on the recorder thread) -----------------------------------------------------

    def _record_outcomes(self, outcomes: list[tuple]) -> None:
        sent = [(req.message_id, result.sid, result.status, req.content_sid, at)
                for kind, req, result, at in (o for o in outcomes if o[0] == _SENT)]
        if sent:
            try:
                with self.db.session() as session:
                    mark_sent_many(session, sent)
            except Exception:
                log.warning("dispatcher %s: recording %d sent messages together failed; "
                            "recording each on its own", self.worker_id, len(sent),
                            exc_info=True)
                for message_id, sid, status, content_sid, at in sent:
                    self._record(mark_sent, message_id, sid, status, content_sid=content_sid,
                                 now=at)
        unsent = [o[1].message_id for o in outcomes if o[0] == _UNSENT]
        if unsent:
            self._release(unsent)
        max_attempts = self.settings.dispatch.max_attempts
        for outcome in outcomes:
            kind = outcome[0]
            if kind == _UNKNOWN:
                _, req, exc, at = outcome
                self._record(mark_unknown, req.message_id, exc, at)
            elif kind == _RETRY:
                _, req, exc, at = outcome
                self._record(mark_retry, req.message_id, exc, at, max_attempts=max_attempts)
            elif kind == _FAILED:
                _, req, exc, at = outcome
                self._record(fail_permanently, req.message_id, exc.code, exc.message, now=at)

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

    # --- heartbeat ------------------------------------------------------------------------------

    def heartbeat_detail(self) -> dict:
        """The figures ``/healthz`` and ``kabar status`` show for this dispatcher."""
        with self._lock:
            return {"in_flight": self._in_flight, "sent": self._sent_total,
                    "concurrency": self.concurrency, "rate_per_second": self.rate,
                    "last_error": self._last_error}

    def _maybe_beat(self, pending=(), *, force: bool = False) -> None:
        if not self._beating:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < BEAT_EVERY.total_seconds():
            return
        self._last_beat = now
        detail = self.heartbeat_detail()
        role = "sending" if detail["in_flight"] or pending else "idle"
        processes.beat(self.db, self.worker_id, "dispatcher", role, detail)

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
            if not self._wait_for_slot(stop_event or threading.Event()):
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
        log.info("dispatcher %s started: %s transport, %d requests in flight at most, %g "
                 "messages/s for all dispatchers together", self.worker_id,
                 getattr(self.transport, "name", "?"), self.concurrency, self.rate)
        self._beating = True
        self._maybe_beat(force=True)
        try:
            while not stop.is_set():
                try:
                    # Incoming first: their replies then go out in the same pass.
                    handled = handle_waiting(self.db, self.settings, clock=self.clock)
                    sent = self.run_once(stop_event=stop) + handled
                except Exception as exc:
                    self._last_error = f"{self.clock().isoformat(timespec='seconds')} {exc}"
                    log.exception("dispatcher %s: pass failed; trying again in %gs",
                                  self.worker_id, error_pause)
                    stop.wait(error_pause)
                    continue
                self._maybe_beat()
                if sent == 0:
                    stop.wait(idle)
        except KeyboardInterrupt:
            log.info("dispatcher %s interrupted", self.worker_id)
        finally:
            self._beating = False
            processes.forget(self.db, self.worker_id)
        log.info("dispatcher %s stopped", self.worker_id)
