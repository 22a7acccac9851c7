"""The Twilio transport: WhatsApp messages through Twilio's Messages API (twilio-python 9).

Errors are sorted for the dispatcher: HTTP 429 and 5xx answers and connection trouble
(refused, reset, timed out) are retryable; any other 4xx is permanent and carries Twilio's
error code (21211 invalid number, 63016 outside the 24-hour window without a template,
21610 the recipient replied STOP, ...).

``twilio.api_base_url`` points the SDK somewhere else than https://api.twilio.com (tests use a
loopback fake of Twilio): the SDK builds every Messages URL from its ``api`` domain's
``base_url``, so that one attribute is replaced; edge and region routing are switched off then,
since they would rewrite the host name.
"""

from __future__ import annotations

import json
import logging

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.config import DEFAULT_TWILIO_API, Settings
from bot.transports import OutboundRequest, SendResult, TransportError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
WHATSAPP_PREFIX = "whatsapp:"
# Statuses Twilio may answer a create with that Kabar records as they are; anything else
# ("accepted", "scheduled", "sending") means Twilio has it queued.
_KEPT_STATUSES = {"queued", "sent", "delivered", "read", "undelivered", "failed"}


def whatsapp_address(number: str) -> str:
    """``+62812…`` → ``whatsapp:+62812…`` (an address that already has the prefix is kept)."""
    return number if number.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + number


class TwilioTransport:
    """Sends through a real ``twilio.rest.Client``; one instance per dispatcher."""

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
        self.client = Client(tw.account_sid, tw.auth_token,
                             http_client=TwilioHttpClient(timeout=timeout))
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
            raise _from_twilio_error(exc) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"no answer from Twilio: {exc.__class__.__name__}: {exc}",
                                 retryable=True) from exc
        except (TwilioException, ValueError) as exc:
            # An answer the SDK could not read: Twilio may or may not have the message.
            raise TransportError(f"unreadable answer from Twilio: {exc}",
                                 retryable=True) from exc
        status = message.status if message.status in _KEPT_STATUSES else "queued"
        return SendResult(sid=message.sid, status=status)


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
