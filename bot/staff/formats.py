"""One way to show dates, times and numbers everywhere in the console and its exports.

A date is ``dd/mm/yyyy`` and a time ``dd/mm/yyyy HH:MM`` in the office's time zone
(``app.timezone``), in both languages; a decimal number has a comma in Indonesian (``3,5``)
and a point in English. ``parse_date`` reads what people type: ``dd/mm/yyyy`` (or with ``-``
or ``.``) and ISO ``yyyy-mm-dd``; the CLI, the reports' filters and the roster's training
dates use it too.

Message kinds, statuses and directions have their names here too (``kind_label`` …, texts in
``text/<lang>/labels.toml``). All of these are template globals of every page.
"""

from __future__ import annotations

import re
from datetime import date, datetime

DATE_FORMAT = "%d/%m/%Y"
DATETIME_FORMAT = "%d/%m/%Y %H:%M"
_DAY_FIRST = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def office_time(moment: datetime) -> datetime:
    """A stored time (UTC, or naive UTC from SQLite) in the office's time zone."""
    from datetime import UTC

    from bot import get_settings

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(get_settings().tz)


def date_text(value: date | datetime | None) -> str:
    """``04/12/2026`` ('' for None); a datetime is first put in the office's time zone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = office_time(value)
    return value.strftime(DATE_FORMAT)


def datetime_text(moment: datetime | None, seconds: bool = False) -> str:
    """``04/12/2026 14:05`` in the office's time zone ('' for None)."""
    if moment is None:
        return ""
    return office_time(moment).strftime(DATETIME_FORMAT + (":%S" if seconds else ""))


def clock_text() -> str:
    """The server's time now in the office's time zone, ``14:05:09`` ("updated at …")."""
    from bot.models import utcnow

    return office_time(utcnow()).strftime("%H:%M:%S")


def number_text(value: float | int | None, decimals: int = 1, language: str | None = None) -> str:
    """``3,5`` in Indonesian, ``3.5`` in English ('–' for None)."""
    if value is None:
        return "–"
    if language is None:
        from bot.staff.i18n import current_language

        language = current_language()
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if language == "id" else text


def parse_date(text: str) -> date:
    """``31/12/2026``, ``31-12-2026``, ``31.12.2026`` or ``2026-12-31``; ValueError otherwise
    (its message shows the accepted forms)."""
    value = (text or "").strip()
    found = _DAY_FIRST.match(value)
    try:
        if found:
            day, month, year = (int(part) for part in found.groups())
            return date(year, month, day)
        found = _ISO.match(value)
        if found:
            year, month, day = (int(part) for part in found.groups())
            return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date on the calendar ({exc})") from None
    raise ValueError(f"{value!r} is not a date: use dd/mm/yyyy (31/12/2026) or yyyy-mm-dd")


def _label(key: str, fallback: str) -> str:
    from bot.staff.i18n import t

    text = t(key)
    return fallback if text == key else text


def kind_label(kind: str | None) -> str:
    """A message kind as people say it (``job_opening`` -> ``lowongan``)."""
    return _label(f"message.kind_{kind}", kind or "") if kind else ""


def status_label(status: str | None) -> str:
    """A message status as people say it (``handled`` -> ``sudah ditangani``)."""
    return _label(f"message.status_{status}", status or "") if status else ""


def direction_label(direction: str | None) -> str:
    """``in``/``out`` as ``Masuk``/``Keluar``."""
    return _label(f"message.direction_{direction}", direction or "") if direction else ""


def register(app) -> None:
    """Make the formats template globals of ``app`` (the console and the simulator)."""
    from bot.staff.i18n import current_language

    app.add_template_global(date_text, "date_text")
    app.add_template_global(datetime_text, "datetime_text")
    app.add_template_global(number_text, "number_text")
    app.add_template_global(current_language, "current_language")
    app.add_template_global(kind_label, "kind_label")
    app.add_template_global(status_label, "message_status_label")
    app.add_template_global(direction_label, "direction_label")
