"""Input made safe for the database before anything else reads it: never a 5xx on odd input.

PostgreSQL refuses a NUL character in text and JSON, and a column of bounded length refuses a
longer value; either used to surface as a 500 (and Twilio retries a 500, then drops the
message). So:

- the console: every query-string and form value has its NUL characters removed and is cut to
  ``MAX_PARAM`` characters before a view sees it (``init_app``, a ``before_request`` hook);
- the Twilio webhooks (which must check the signature over the raw form first) clean their
  fields themselves with ``clean_field``: NUL removed, cut to the column's size, and the
  change noted on the stored row (``meta.cleaned``) so staff can see a message was altered;
- numbers typed into the console are read with ``is_number``: ``"²".isdigit()`` is true in
  Python but ``int("²")`` fails, so only ASCII digits count.
"""

from __future__ import annotations

from datetime import date

from flask import Flask, request
from werkzeug.datastructures import ImmutableMultiDict

NUL = "\x00"
MAX_PARAM = 20_000  # characters of one console value (the longest is an announcement text)
# The earliest and latest day a console date filter accepts: a day outside this range cannot
# be turned into a time zone aware moment and back without overflowing.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
# Twilio form fields -> the most Kabar keeps of each (the size of the column they go to).
FIELD_LIMITS = {"Body": 4096, "ProfileName": 200, "ButtonPayload": 256, "ButtonText": 256,
                "MediaUrl": 2048, "MediaContentType": 100, "Latitude": 32, "Longitude": 32}


MAX_ID = 2**31 - 1  # row ids are 32-bit (as bot.MAX_ID)
MAX_PAGE = 100_000  # a page number beyond this is the last page anyone could reach


def is_number(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits (what ``int`` reads as an id)."""
    return text.isascii() and text.isdigit()


def id_value(text: str | int | None) -> int | None:
    """A row id typed into the console, or None when it cannot be one (``²``, 20 digits)."""
    text = str(text if text is not None else "").strip()
    if not is_number(text) or len(text) > 10 or int(text) > MAX_ID:
        return None
    return int(text)


def in_date_range(day: date) -> bool:
    """Whether a typed day can be used as a filter bound (not year 1 or 9999)."""
    return FIRST_DAY <= day <= LAST_DAY


def limit_for(name: str) -> int | None:
    """The size limit of a Twilio field (``MediaUrl3`` as ``MediaUrl``), or None."""
    return FIELD_LIMITS.get(name.rstrip("0123456789"))


def clean_field(name: str, value: str, notes: dict[str, str]) -> str:
    """``value`` without NUL characters and cut to its field's limit; changes go in ``notes``."""
    if NUL in value:
        value = value.replace(NUL, "")
        notes[name] = "nul_removed"
    limit = limit_for(name)
    if limit is not None and len(value) > limit:
        notes[name] = f"cut from {len(value)} to {limit} characters"
        value = value[:limit]
    return value


def clean_form(form) -> tuple[dict[str, str], dict[str, str]]:
    """A Twilio form (first value of each field) made safe; returns it and what changed."""
    notes: dict[str, str] = {}
    cleaned = {}
    for key in form:
        name = key.replace(NUL, "")
        cleaned[name] = clean_field(name, form.get(key) or "", notes)
    return cleaned, notes


def _safe(value: str) -> str:
    if NUL in value:
        value = value.replace(NUL, "")
    return value[:MAX_PARAM]


def _clean_multidict(values) -> ImmutableMultiDict:
    return ImmutableMultiDict([(_safe(k), _safe(v)) for k, v in values.items(multi=True)])


def init_app(app: Flask, skip_blueprints: tuple[str, ...] = ("twilio",)) -> None:
    """Clean every request's query string and form, except where a signature covers them."""

    @app.before_request
    def _clean_input() -> None:
        if request.blueprint in skip_blueprints:
            return
        if any(NUL in k or NUL in v or len(v) > MAX_PARAM
               for k, v in request.args.items(multi=True)):
            request.args = _clean_multidict(request.args)
        if request.method in ("POST", "PUT", "PATCH") and any(
                NUL in k or NUL in v or len(v) > MAX_PARAM
                for k, v in request.form.items(multi=True)):
            request.form = _clean_multidict(request.form)
