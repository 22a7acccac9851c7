"""The Twilio transport: WhatsApp messages through Twilio's Messages API (twilio-python 9).

Errors are sorted for the dispatcher: HTTP 429 and 5xx answers and connection trouble
(refused, reset, timed out) are retryable; any other 4xx is permanent and carries Twilio's
error code (21211 invalid number, 63016 outside the 24-hour window without a template,
21610 the recipient replied STOP, ...). An error answer, or a connection that was never made
(refused, no route, connect timeout), is definite: Twilio does not have the message. A
connection lost or timed out after the request went out, or an answer the SDK cannot read, is
not: Twilio may have accepted the message, so the error says ``maybe_sent`` and the dispatcher
looks the message up (``find_sent``, Twilio's message list) before sending it again. A 429
carries the seconds of its ``Retry-After`` header (``TransportError.retry_after``): the
dispatcher pauses every dispatcher for that long (``bot.pacing``).

One transport is shared by a dispatcher's sending threads: the SDK's HTTP client keeps one
requests session whose connection pool is as large as ``dispatch.concurrency``.

``twilio.api_base_url`` points the SDK somewhere else than https://api.twilio.com (tests use a
loopback fake of Twilio): the SDK builds every Messages URL from its ``api`` domain's
``base_url``, so that one attribute is replaced; edge and region routing are switched off then,
since they would rewrite the host name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError

from bot.config import DEFAULT_TWILIO_API, Settings
from bot.transports import OutboundRequest, SendResult, TransportError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
WHATSAPP_PREFIX = "whatsapp:"
# find_sent: how far Twilio's clock may be behind ours (date_created also has whole seconds only)
CLOCK_SKEW = timedelta(seconds=30)
# find_sent: at most this many of the recipient's messages are read, newest first, 50 a page.
FIND_SENT_LIMIT = 100
FIND_SENT_PAGE_SIZE = 50
# Statuses Twilio may answer a create with that Kabar records as they are; anything else
# ("accepted", "scheduled", "sending") means Twilio has it queued.
_KEPT_STATUSES = {"queued", "sent", "delivered", "read", "undelivered", "failed"}


def whatsapp_address(number: str) -> str:
    """``+62812…`` → ``whatsapp:+62812…`` (an address that already has the prefix is kept)."""
    return number if number.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + number


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: a number of seconds or an HTTP date; None if absent
    or unreadable."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _PooledHttpClient(TwilioHttpClient):
    """The SDK's HTTP client with a connection pool as large as the requests in flight, and
    each thread's last answer kept apart (the SDK keeps one for the whole client, and an error
    exception carries no headers: the 429's ``Retry-After`` is read from here)."""

    def __init__(self, timeout: float, pool_size: int) -> None:
        super().__init__(timeout=timeout)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._local = threading.local()

    def request(self, *args, **kwargs):
        self._local.response = None
        response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    def last_header(self, name: str) -> str | None:
        response = getattr(self._local, "response", None)
        if response is None or not response.headers:
            return None
        return response.headers.get(name)


class TwilioTransport:
    """Sends through a real ``twilio.rest.Client``; one instance per dispatcher, shared by its
    sending threads (the client's requests session is safe for concurrent sends)."""

    name = "twilio"

    def __init__(self, settings: Settings, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        tw = settings.twilio
        if not (tw.account_sid and tw.auth_token):
            raise ValueError("the twilio transport needs twilio.account_sid and twilio.auth_token")
        if not (tw.whatsapp_from or tw.messaging_service_sid):
            raise ValueError("the twilio transport needs twilio.whatsapp_from or "
                             "twilio.messaging_service_sid")
        self.settings = settings
        self.from_ = whatsapp_address(tw.whatsapp_from) if tw.whatsapp_from else None
        self.messaging_service_sid = tw.messaging_service_sid or None
        self.http_client = _PooledHttpClient(timeout, max(10, settings.dispatch.concurrency))
        self.client = Client(tw.account_sid, tw.auth_token, http_client=self.http_client)
        base_url = tw.api_base_url.rstrip("/")
        if base_url != DEFAULT_TWILIO_API:
            self.client.api.base_url = base_url
            self.client.edge = None
            self.client.region = None

    def send(self, req: OutboundRequest) -> SendResult:
        params: dict = {"to": whatsapp_address(req.to)}
        if self.from_:
            params["from_"] = self.from_
        else:
            params["messaging_service_sid"] = self.messaging_service_sid
        if req.content_sid:
            params["content_sid"] = req.content_sid
            if req.content_variables:
                params["content_variables"] = json.dumps(req.content_variables,
                                                         ensure_ascii=False)
        else:
            params["body"] = req.body
        if req.status_callback:
            params["status_callback"] = req.status_callback
        try:
            message = self.client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            error = _from_twilio_error(exc)
            if error.rate_limited:
                error.retry_after = parse_retry_after(self.http_client.last_header("Retry-After"))
            raise error from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"no answer from Twilio: {exc.__class__.__name__}: {exc}",
                                 retryable=True, maybe_sent=_may_have_arrived(exc)) from exc
        except (TwilioException, ValueError) as exc:
            # An answer the SDK could not read: Twilio may or may not have the message.
            raise TransportError(f"unreadable answer from Twilio: {exc}",
                                 retryable=True, maybe_sent=True) from exc
        return SendResult(sid=message.sid, status=_kept_status(message.status))

    def find_sent(self, req: OutboundRequest, since: datetime, *,
                  exclude: Collection[str] = ()) -> SendResult | None:
        """Twilio's record of ``req`` if Twilio accepted it at or after ``since``, else None.

        Lists the messages to the recipient (``To`` filter, newest first, at most
        FIND_SENT_LIMIT) and takes the oldest one that is outbound, from our sender (number or
        messaging service), created no earlier than ``since`` less CLOCK_SKEW, not in
        ``exclude`` (SIDs recorded on other rows) and, for a free-form message, with the same
        body. A template message is matched without its body: Twilio's list shows the rendered
        text and no Content SID. No ``DateSent`` filter is used: ``date_sent`` stays empty while
        Twilio still has the message queued, so that filter would hide the very message looked
        for. Raises TransportError (retryable) when Twilio cannot be asked.
        """
        to = whatsapp_address(req.to)
        earliest = since - CLOCK_SKEW
        try:
            listed = list(self.client.messages.stream(to=to, limit=FIND_SENT_LIMIT,
                                                      page_size=FIND_SENT_PAGE_SIZE))
        except (TwilioRestException, TwilioServiceException) as exc:
            error = _from_twilio_error(exc)
            raise TransportError(f"could not list messages: {error.message}", code=error.code,
                                 http_status=error.http_status, retryable=True) from exc
        except (requests.exceptions.RequestException, TwilioException, ValueError) as exc:
            raise TransportError(f"could not list messages: {exc.__class__.__name__}: {exc}",
                                 retryable=True) from exc
        # Newest first, dates to the second: among equal dates the later one listed is older.
        matches = [(m.date_created, -index, m) for index, m in enumerate(listed)
                   if self._is_ours(m, to, req, earliest, exclude)]
        if not matches:
            return None
        found = min(matches, key=lambda match: match[:2])[2]
        log.info("message %s to %s: Twilio has it as %s (%s)", req.message_id, req.to, found.sid,
                 found.status)
        return SendResult(sid=found.sid, status=_kept_status(found.status))

    def _is_ours(self, listed, to: str, req: OutboundRequest, earliest: datetime,
                 exclude: Collection[str]) -> bool:
        if not listed.sid or listed.sid in exclude:
            return False
        if not str(listed.direction or "").startswith("outbound"):
            return False
        if whatsapp_address(listed.to or "") != to:
            return False
        if listed.date_created is None or listed.date_created < earliest:
            return False
        if self.from_ and listed.from_ and whatsapp_address(listed.from_) != self.from_:
            return False
        if (self.messaging_service_sid and listed.messaging_service_sid
                and listed.messaging_service_sid != self.messaging_service_sid):
            return False
        if req.content_sid:
            return True
        return _same_text(listed.body, req.body)


def _kept_status(status: str | None) -> str:
    return status if status in _KEPT_STATUSES else "queued"


def _same_text(a: str | None, b: str | None) -> bool:
    def norm(text: str | None) -> str:
        return (text or "").replace("\r\n", "\n").strip()

    return norm(a) == norm(b)


def _may_have_arrived(exc: requests.exceptions.RequestException) -> bool:
    """Whether a request that failed this way may have reached Twilio.

    Not when the connection was never made (refused, unreachable, name not resolved, connect
    timeout: urllib3 reports all of these as ``ConnectTimeoutError`` or a subclass) or when the
    request was never built (a bad URL). Anything else (reset, closed without an answer, read
    timeout, a broken answer) happened after the request may have gone out.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader,
                        requests.exceptions.URLRequired)):
        return False
    seen = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectTimeoutError):
            return False
        stack.append(getattr(current, "reason", None))
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        stack.append(current.__cause__)
        stack.append(current.__context__)
    return True


def _from_twilio_error(exc: TwilioRestException | TwilioServiceException) -> TransportError:
    status = int(exc.status) if exc.status is not None else None
    code = str(exc.code) if exc.code is not None else None
    if isinstance(exc, TwilioServiceException):
        text = exc.detail or exc.title
    else:
        text = exc.msg
    retryable = status is not None and (status == 429 or status >= 500)
    return TransportError(f"Twilio answered {status}: {text}", code=code, http_status=status,
                          retryable=retryable)
