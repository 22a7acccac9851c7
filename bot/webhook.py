"""The Twilio webhooks: ``POST /twilio/inbound`` (incoming WhatsApp messages) and
``POST /twilio/status`` (delivery status callbacks, applied by ``bot.delivery``).

Every request is checked against ``X-Twilio-Signature`` (when ``twilio.validate_signatures``),
using ``app.public_url`` plus the path and query Twilio called, so the check also holds behind a
proxy. The answer is always empty TwiML: replies are outbox rows that the dispatcher sends, so
each of them has a SID, a delivery status and retries.

What each outcome returns:

- forged or missing signature: 403, nothing stored, a warning in the log;
- NUL characters are removed and over-long fields cut (``bot.cleaning``) before anything is
  stored, with a note on the row (``meta.cleaned``): PostgreSQL refuses both;
- malformed form (no ``From``, no ``MessageSid``, ``From`` not a phone number): 400 and a log
  line, never 500;
- otherwise the message is recorded (``bot.inbox.record_inbound``: one insert that ignores a
  ``MessageSid`` already stored, so a redelivery is handled once) and answered 200 at once; the
  inbox worker handles it (conversation, progress, replies) moments later, so a slow or failing
  handler never costs Twilio a timeout or loses the message;
- the database cannot be reached: 500 and a log line (nothing is half-stored).

Status callbacks are checked the same way (403 when forged, 400 without ``MessageSid`` or
``MessageStatus``); a status Kabar does not track is logged and answered 200; a repeated or late
callback changes nothing (``bot.delivery.apply_status``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Blueprint, Response, request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from bot import get_db, get_settings
from bot.cleaning import clean_form
from bot.conversations.router import Inbound
from bot.delivery import apply_status, normalize_status
from bot.inbox import record_inbound
from bot.phones import PhoneError, normalize_phone

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__, url_prefix="/twilio")

EMPTY_TWIML = str(MessagingResponse())
MAX_MEDIA = 10  # WhatsApp delivers at most one, MMS up to ten
LOCATION_TYPE = "location"  # media_type of a shared location; media_url is "geo:lat,lon"


class BadInbound(ValueError):
    """A form that is not an incoming message Kabar can handle; the text says what is wrong."""


@bp.post("/inbound")
def inbound() -> Response:
    """An incoming WhatsApp message from Twilio."""
    settings = get_settings()
    if settings.twilio.validate_signatures and not signature_is_valid(settings.twilio.auth_token,
                                                                      settings.app.public_url):
        log.warning("inbound webhook: refused a request with a %s X-Twilio-Signature from %s",
                    "wrong" if request.headers.get(SIGNATURE_HEADER) else "missing",
                    request.remote_addr)
        return Response("invalid signature\n", status=403, mimetype="text/plain")
    return receive_form(request.form)


@bp.post("/status")
def status() -> Response:
    """A delivery status callback from Twilio for a message Kabar sent."""
    settings = get_settings()
    if not _trusted(settings, "status callback"):
        return Response("invalid signature\n", status=403, mimetype="text/plain")
    form, _notes = clean_form(request.form)
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    reported = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip()
    error_code = (form.get("ErrorCode") or "").strip() or None
    problem = None
    if not sid:
        problem = "no MessageSid"
    elif len(sid) > 64:
        problem = f"MessageSid is too long ({len(sid)} characters)"
    elif not reported:
        problem = f"no MessageStatus ({sid})"
    elif len(reported) > 32:
        problem = f"MessageStatus is too long ({sid})"
    elif error_code is not None and len(error_code) > 16:
        problem = f"ErrorCode is too long ({sid})"
    if problem:
        log.warning("status callback: bad request: %s", problem)
        return Response(f"bad request: {problem}\n", status=400, mimetype="text/plain")
    if normalize_status(reported) is None:
        log.info("status callback: %s reported %r, a status Kabar does not track; ignored",
                 sid, reported)
        return Response("", status=200, mimetype="text/plain")
    try:
        with get_db().session() as session:
            apply_status(session, sid, reported, error_code)
    except Exception:
        log.exception("status callback: %s %s could not be recorded; rolled back", sid,
                      reported)
        return Response("error\n", status=500, mimetype="text/plain")
    return Response("", status=200, mimetype="text/plain")


def _trusted(settings, what: str) -> bool:
    """Signature check of the current request (when enabled), with a warning when it fails."""
    if not settings.twilio.validate_signatures or signature_is_valid(
            settings.twilio.auth_token, settings.app.public_url):
        return True
    log.warning("%s: refused a request with a %s X-Twilio-Signature from %s", what,
                "wrong" if request.headers.get(SIGNATURE_HEADER) else "missing",
                request.remote_addr)
    return False


def signature_is_valid(auth_token: str, public_url: str) -> bool:
    """Whether the current request carries Twilio's signature for our public URL and params."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not auth_token:
        return False
    url = public_url.rstrip("/") + request.full_path.rstrip("?")
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    return RequestValidator(auth_token).validate(url, request.form, signature, algorithm)


def receive_form(form: Mapping[str, str]) -> Response:
    """Record one Twilio inbound form (already trusted) for the inbox; shared with the simulator.

    Only the recording happens here, in one statement: the inbox worker handles the message.
    """
    form, notes = clean_form(form)
    try:
        message = parse_form(form)
    except BadInbound as exc:
        log.warning("inbound webhook: bad request: %s", exc)
        return Response(f"bad request: {exc}\n", status=400, mimetype="text/plain")
    row = message.to_row()
    if notes:
        # What was changed to store the message (NUL removed, a field cut) stays on the row.
        row["meta"] = {**(row["meta"] or {}), "cleaned": notes}
        log.info("inbound webhook: %s stored with changes: %s", message.message_sid,
                 ", ".join(f"{k} {v}" for k, v in sorted(notes.items())))
    try:
        with get_db().single_statement.begin() as connection:
            if not record_inbound(connection, row):
                log.info("inbound webhook: %s already recorded", message.message_sid)
    except Exception:
        # The database is unreachable or full: 500, so Twilio logs it and its fallback URL (if
        # set) or a redelivery gets another chance; nothing half-stored is left behind.
        log.exception("inbound webhook: %s could not be recorded", message.message_sid)
        return Response("error\n", status=500, mimetype="text/plain")
    return _twiml()


def parse_form(form: Mapping[str, str]) -> Inbound:
    """Twilio's form → Inbound; raises BadInbound naming the field that is missing or wrong."""
    sid = (form.get("MessageSid") or form.get("SmsMessageSid") or "").strip()
    if not sid:
        raise BadInbound("no MessageSid")
    if len(sid) > 64:
        raise BadInbound(f"MessageSid is too long ({len(sid)} characters)")
    sender = (form.get("From") or "").strip()
    if not sender:
        raise BadInbound(f"no From ({sid})")
    try:
        phone = normalize_phone(sender)
    except PhoneError as exc:
        raise BadInbound(f"From is not a phone number ({sid}): {exc}") from None
    try:
        count = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        raise BadInbound(f"NumMedia is not a number ({sid})") from None
    media = [(form.get(f"MediaUrl{i}", ""), form.get(f"MediaContentType{i}", ""))
             for i in range(count) if form.get(f"MediaUrl{i}")]
    location = _location(form, sid)
    if location is not None and not media:
        media = [(location, LOCATION_TYPE)]
    return Inbound(phone=phone, body=form.get("Body") or "", message_sid=sid, media=media,
                   profile_name=form.get("ProfileName") or None,
                   button_payload=(form.get("ButtonPayload") or "").strip() or None,
                   button_text=(form.get("ButtonText") or "").strip() or None)


def _location(form: Mapping[str, str], sid: str) -> str | None:
    """A shared location (``Latitude``/``Longitude``, no media) as ``geo:lat,lon``, or None.

    Coordinates that are not numbers on the globe are logged and ignored: the message itself
    is still handled (an empty one is asked to be typed).
    """
    lat, lon = (form.get("Latitude") or "").strip(), (form.get("Longitude") or "").strip()
    if not (lat or lon):
        return None
    try:
        if abs(float(lat)) <= 90 and abs(float(lon)) <= 180:
            log.info("inbound webhook: %s shares a location", sid)
            return f"geo:{lat},{lon}"
    except ValueError:
        pass
    log.warning("inbound webhook: %s has a location that is not one", sid)
    return None


def _twiml() -> Response:
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")
