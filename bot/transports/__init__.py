"""Transports: how an outbox row leaves Kabar. One small interface, three implementations.

- ``twilio``: the real Twilio REST API (``bot.transports.twilio``).
- ``simulator``: no network; the outbox row is the record and ``/simulator`` shows it.
- ``console``: prints each message, for trying Kabar in a terminal.

A transport only sends: it never touches the database. The dispatcher (``bot.dispatcher``)
claims rows, turns each into an ``OutboundRequest`` (``request_for``), calls ``send`` and records
the ``SendResult`` or the ``TransportError`` on the row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.models import Message

STATUS_CALLBACK_PATH = "/twilio/status"


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
    """

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable

    def __repr__(self) -> str:
        return (f"TransportError({self.message!r}, code={self.code!r}, "
                f"http_status={self.http_status!r}, retryable={self.retryable!r})")


class Transport(Protocol):
    name: str

    def send(self, req: OutboundRequest) -> SendResult:
        """Send one message or raise TransportError."""
        ...


def fake_sid() -> str:
    """A message SID shaped like Twilio's: ``SM`` and 32 hex digits."""
    return "SM" + uuid.uuid4().hex


def status_callback_url(settings: Settings) -> str:
    return settings.app.public_url.rstrip("/") + STATUS_CALLBACK_PATH


def request_for(message: Message, settings: Settings) -> OutboundRequest:
    """The request for an outbox row.

    A row that names its own Content SID, or whose kind has one in ``twilio.templates``, goes out
    as that template with the row's ``content_variables``; anything else as the row's body.
    The body is always carried along so the simulator and console can show the text.
    """
    content_sid = message.content_sid or settings.twilio.templates.get(message.kind) or None
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
    "OutboundRequest",
    "SendResult",
    "Transport",
    "TransportError",
    "build_transport",
    "fake_sid",
    "request_for",
    "status_callback_url",
]
