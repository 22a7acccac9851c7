"""Transports: how an outbox row leaves Kabar. One small interface, three implementations.

- ``twilio``: the real Twilio REST API (``bot.transports.twilio``).
- ``simulator``: no network; the outbox row is the record and ``/simulator`` shows it.
- ``console``: prints each message, for trying Kabar in a terminal.

A transport only sends: it never touches the database. The dispatcher (``bot.dispatcher``)
claims rows, turns each into an ``OutboundRequest`` (``request_for``), calls ``send`` and records
the ``SendResult`` or the ``TransportError`` on the row.

When the outcome of a send is unknown (the dispatcher died before storing the answer, or the
answer was lost after the request may have reached the provider), the dispatcher asks
``find_sent`` whether the provider has the message before sending it again: the twilio
transport looks in Twilio's message list; the simulator and console have no record to ask and
answer None (not sent).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.models import Message

STATUS_CALLBACK_PATH = "/twilio/status"
# WhatsApp's customer service window: free-form messages only this long after the graduate's
# last message; outside it only approved templates.
SESSION_WINDOW = timedelta(hours=24)
# error_code of a business-initiated message refused because its template is not configured.
NO_TEMPLATE = "no_template"
# error_code of a reply refused because the window it answered in has closed since.
WINDOW_CLOSED = "window_closed"


@dataclass
class OutboundRequest:
    """One message to send. ``message_id`` is the outbox row's id (the idempotency key)."""

    message_id: int
    to: str  # E.164, e.g. +6281234567890
    body: str
    content_sid: str | None = None  # an approved template (HX...); then body is only for display
    content_variables: dict[str, Any] | None = None
    status_callback: str | None = None


@dataclass
class SendResult:
    """What the provider said: its message SID and the status to record (usually ``queued``)."""

    sid: str
    status: str


class TransportError(Exception):
    """A send that did not go through.

    ``retryable`` says whether the same request may be tried again later (rate limits, server
    errors, connection trouble); otherwise the failure is permanent and ``code`` is the
    provider's error code (Twilio's, e.g. ``21211``) to show to staff.

    ``maybe_sent`` says the request may have reached the provider and been accepted although
    no answer came back (a connection dropped or timed out after the request was sent, an
    answer that could not be read): the message must be looked up (``find_sent``) before it is
    sent again. A definite failure (an error answer, a connection that was never made) has
    ``maybe_sent`` False.

    ``retry_after``: the seconds a 429 answer's ``Retry-After`` header asked to wait, if any.
    """

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 retryable: bool = False, maybe_sent: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        """The provider said to slow down (HTTP 429); ``retry_after`` is how long, if it said."""
        return self.http_status == 429

    def __repr__(self) -> str:
        return (f"TransportError({self.message!r}, code={self.code!r}, "
                f"http_status={self.http_status!r}, retryable={self.retryable!r}, "
                f"maybe_sent={self.maybe_sent!r})")


class Transport(Protocol):
    name: str

    def send(self, req: OutboundRequest) -> SendResult:
        """Send one message or raise TransportError."""
        ...

    def find_sent(self, req: OutboundRequest, since: datetime, *,
                  exclude: Collection[str] = ()) -> SendResult | None:
        """The provider's record of ``req`` if it accepted it at or after ``since``, else None.

        ``exclude``: SIDs already recorded on other outbox rows, never an answer. Raises
        TransportError when the provider cannot be asked (then nothing is known yet).
        """
        ...


def find_sent(transport: Transport, req: OutboundRequest, since: datetime, *,
              exclude: Collection[str] = ()) -> SendResult | None:
    """``transport.find_sent``, or None for a transport that keeps no record to ask."""
    finder = getattr(transport, "find_sent", None)
    if finder is None:
        return None
    return finder(req, since, exclude=exclude)


class NotSendable(TransportError):
    """A row ``request_for`` refuses before anything is sent; the dispatcher fails it with
    this ``code`` and text (permanent: sending it later cannot help)."""


class NoTemplate(NotSendable):
    """A business-initiated message outside the 24-hour window with no template to carry it.

    The dispatcher fails the row with ``error_code`` ``no_template`` and this text, which
    names the key staff must configure.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"not sent: the graduate's 24-hour WhatsApp window is closed and no template is "
            f"configured for {kind} messages; set twilio.templates.{kind} to the Content SID "
            f"(HX...) of an approved template in the configuration file",
            code=NO_TEMPLATE)
        self.kind = kind


class WindowClosed(NotSendable):
    """A reply (free-form text) that waited in the outbox until the graduate's 24-hour window
    closed, say while no dispatcher ran for a day: Twilio would refuse it with 63016."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"not sent: this {kind} answers the graduate's message, but that message is more "
            f"than 24 hours old by now and WhatsApp takes free-form text only within 24 hours "
            f"(was a dispatcher stopped?)", code=WINDOW_CLOSED)
        self.kind = kind


def fake_sid() -> str:
    """A message SID shaped like Twilio's: ``SM`` and 32 hex digits."""
    return "SM" + uuid.uuid4().hex


def status_callback_url(settings: Settings) -> str:
    return settings.app.public_url.rstrip("/") + STATUS_CALLBACK_PATH


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether free-form text may go out: the graduate wrote less than 24 hours ago."""
    return last_inbound_at is not None and now - last_inbound_at < SESSION_WINDOW


def request_for(message: Message, settings: Settings,
                now: datetime | None = None) -> OutboundRequest:
    """The request for an outbox row, decided at send time (``now``): template or body.

    This is the one place the choice is made, for every transport:

    - a row that names its own Content SID goes out as that template;
    - a business-initiated kind (``bot.outbox.BUSINESS_INITIATED``: checkin, reminder,
      job_opening, announcement) goes out as free-form body while the graduate's 24-hour window
      is open (``Graduate.last_inbound_at``), and otherwise as the template configured for its
      kind (``twilio.templates``) with the row's ``content_variables``; with no template
      configured it raises ``NoTemplate`` and nothing is sent;
    - every other kind (replies, confirmations) answers a message inside the window: the body.
      When the graduate's recorded window has closed since (the reply waited a day in the
      outbox), ``WindowClosed`` is raised and nothing is sent, where Twilio would answer 63016.

    The body is always carried along so the simulator and console can show the text.
    """
    from bot.models import utcnow
    from bot.outbox import BUSINESS_INITIATED

    content_sid = message.content_sid or None
    graduate = message.graduate
    last_inbound = graduate.last_inbound_at if graduate is not None else None
    if content_sid is None and not window_open(last_inbound, now or utcnow()):
        if message.kind in BUSINESS_INITIATED:
            content_sid = settings.twilio.templates.get(message.kind) or None
            if content_sid is None:
                raise NoTemplate(message.kind)
        elif last_inbound is not None:
            raise WindowClosed(message.kind)
    return OutboundRequest(
        message_id=message.id,
        to=message.phone,
        body=message.body,
        content_sid=content_sid,
        content_variables=dict(message.content_variables or {}) if content_sid else None,
        status_callback=status_callback_url(settings),
    )


def build_transport(settings: Settings) -> Transport:
    """The transport named by ``transport.kind``."""
    kind = settings.transport.kind
    if kind == "twilio":
        from bot.transports.twilio import TwilioTransport

        return TwilioTransport(settings)
    if kind == "simulator":
        from bot.transports.simulator import SimulatorTransport

        return SimulatorTransport()
    if kind == "console":
        from bot.transports.console import ConsoleTransport

        return ConsoleTransport()
    raise ValueError(f"transport.kind must be twilio, simulator or console, not {kind!r}")


__all__ = [
    "NO_TEMPLATE",
    "SESSION_WINDOW",
    "WINDOW_CLOSED",
    "NoTemplate",
    "NotSendable",
    "OutboundRequest",
    "SendResult",
    "Transport",
    "TransportError",
    "build_transport",
    "fake_sid",
    "find_sent",
    "request_for",
    "status_callback_url",
    "WindowClosed",
    "window_open",
]
