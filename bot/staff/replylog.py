"""The reply log: every message, newest first, searched and filtered, and exported as shown.

Filters come from the query string (institution, cohort, direction, status, text, local dates,
needs-help) and go through ``bot.exports.filter_messages``, so the page and its CSV/XLSX export
select the same rows. Paging is by keyset on the message id (``?before_id=`` older,
``?after_id=`` newer, 50 a page): no OFFSET and no count of the whole table, so a search stays
fast on a few hundred thousand messages. A viewer sees only their institution's cohorts; a cohort
or institution outside the scope is a 404.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask import abort, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from werkzeug.routing import BuildError

from bot import get_db, get_settings
from bot.cleaning import id_value, in_date_range
from bot.exports import HEADERS, export, filter_messages, needs_help_ids
from bot.models import (
    INBOUND,
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_PENDING,
    MSG_QUEUED,
    MSG_READ,
    MSG_RECEIVED,
    MSG_SENDING,
    MSG_SENT,
    MSG_SUPPRESSED,
    MSG_UNDELIVERED,
    OUTBOUND,
    Cohort,
    Graduate,
    Institution,
    Message,
    ProgressReport,
)
from bot.staff import bp
from bot.staff.auth import cohort_or_404, scoped_cohort_ids
from bot.staff.formats import (
    DATETIME_FORMAT,
    direction_label,
    kind_label,
    parse_date,
    status_label,
)
from bot.staff.i18n import t
from bot.staff.reads import page_session

PAGE_SIZE = 50
DIRECTIONS = (INBOUND, OUTBOUND)
STATUSES = (MSG_RECEIVED, MSG_PENDING, MSG_SENDING, MSG_QUEUED, MSG_SENT, MSG_DELIVERED,
            MSG_READ, MSG_UNDELIVERED, MSG_FAILED, MSG_SUPPRESSED)
MAX_TEXT = 200
# Beyond this many cohorts in view the cohort filter lists one institution's cohorts (the one
# chosen, or the viewer's): a province has thousands, and listing them all made every page of
# the log a 300 KB form.
COHORT_OPTIONS_MAX = 300
MIMETYPES = {"csv": "text/csv",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# Until the graduate page and the cohort timeline are registered, links use their planned paths.
_PLANNED_PATHS = {"staff.graduate": "/staff/graduates/{graduate_id}",
                  "staff.timeline": "/staff/cohorts/{cohort_id}"}


def console_link(endpoint: str, **values: Any) -> str:
    """``url_for`` for a console page that may not be registered yet (its planned path then)."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return _PLANNED_PATHS[endpoint].format(**values)


def _cohort_rows():
    """Cohorts the current user may see, as rows (id, name, skill, institution_id,
    institution), by institution and name."""
    stmt = (select(Cohort.id, Cohort.name, Cohort.skill, Cohort.institution_id,
                   Institution.name.label("institution"))
            .join(Institution, Cohort.institution_id == Institution.id)
            .order_by(Institution.name, Cohort.name, Cohort.id))
    if current_user.scope_institution_id is not None:
        stmt = stmt.where(Cohort.institution_id == current_user.scope_institution_id)
    return stmt


def cohort_choices(session) -> list[Any]:
    """The cohorts the current user may see, as rows (id, name, skill, institution_id,
    institution), by institution and name: one query, for filters and labels."""
    return list(session.execute(_cohort_rows()))


def log_cohort_options(session, filters: LogFilters) -> tuple[list[Any], list[Any], bool]:
    """The reply log's filter choices: institutions (id, name) that have cohorts, the cohorts
    to list, and whether an institution must be chosen first (more than
    ``COHORT_OPTIONS_MAX`` cohorts in view and none chosen; the chosen cohort stays listed)."""
    own = current_user.scope_institution_id
    institutions = select(Institution.id, Institution.name).where(
        Institution.id.in_(select(Cohort.institution_id))).order_by(Institution.name)
    counted = select(func.count()).select_from(Cohort)
    if own is not None:
        institutions = institutions.where(Institution.id == own)
        counted = counted.where(Cohort.institution_id == own)
    institution_rows = session.execute(institutions).all()
    if session.scalar(counted) <= COHORT_OPTIONS_MAX:
        return institution_rows, cohort_choices(session), False
    narrow = filters.institution_id if filters.institution_id is not None else own
    if narrow is not None:
        return institution_rows, list(session.execute(
            _cohort_rows().where(Cohort.institution_id == narrow))), False
    chosen = [] if filters.cohort_id is None else list(session.execute(
        _cohort_rows().where(Cohort.id == filters.cohort_id)))
    return institution_rows, chosen, True


def page_cohorts(session, messages: list[Any]) -> dict[int, Any]:
    """The cohorts of these messages (rows as ``cohort_choices`` gives them), by id."""
    ids = {m.cohort_id for m in messages if m.cohort_id is not None}
    if not ids:
        return {}
    return {row.id: row for row in session.execute(_cohort_rows().where(Cohort.id.in_(ids)))}


@dataclass
class LogFilters:
    """The reply log's filters as the form shows them, and as ``filter_messages`` takes them."""

    institution_id: int | None = None
    cohort_id: int | None = None
    direction: str = ""
    status: str = ""
    text: str = ""
    date_from: date | None = None
    date_to: date | None = None
    needs_help: bool = False

    def query_args(self) -> dict[str, Any]:
        """The filters as query-string arguments (for paging and export links)."""
        args = {"institution_id": self.institution_id, "cohort_id": self.cohort_id,
                "direction": self.direction, "status": self.status, "q": self.text,
                "from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None,
                "needs_help": "1" if self.needs_help else None}
        return {k: v for k, v in args.items() if v not in (None, "")}

    def for_export(self, session) -> dict[str, Any]:
        """The filters for ``bot.exports``: the viewer's scope added, local dates as times."""
        f = scoped_period(session, self.cohort_id, self.institution_id, self.date_from,
                          self.date_to)
        for key in ("direction", "status", "text"):
            if getattr(self, key):
                f[key] = getattr(self, key)
        if self.needs_help:
            f["needs_help"] = True
        return f


def scoped_period(session, cohort_id: int | None, institution_id: int | None,
                  date_from: date | None, date_to: date | None) -> dict[str, Any]:
    """Export filters for a cohort or LPKS (the viewer's scope added) and local days as
    times in the office's zone (``bot.exports`` filter keys)."""
    zone = get_settings().tz
    f: dict[str, Any] = {}
    scope = scoped_cohort_ids(session)
    if cohort_id is not None:
        f["cohort_id"] = [cohort_id]
    elif scope is not None:
        f["cohort_id"] = list(scope)
    if institution_id is not None:
        f["institution_id"] = institution_id
    if date_from:
        f["since"] = datetime.combine(date_from, time(), tzinfo=zone)
    if date_to:
        until = datetime.combine(date_to + timedelta(days=1), time(), tzinfo=zone)
        if until <= datetime.now(zone):  # a bound in the future excludes nothing
            f["until"] = until
    return f


def int_arg(name: str) -> int | None:
    """An id from the query string; None when absent, 404 when it cannot be an id."""
    value = (request.args.get(name) or "").strip()
    if not value:
        return None
    number = id_value(value)
    if number is None:
        abort(404)
    return number


def date_arg(name: str, errors: list[str], bad: str = "replylog.bad_date") -> date | None:
    """A day typed in the query string (dd/mm/yyyy or ISO); None when absent, or when it is
    no date or outside the years a filter can use (year 1 or 9999 overflow as a local
    time), with the console text ``bad`` added to ``errors``."""
    value = (request.args.get(name) or "").strip()[:40]
    if not value:
        return None
    try:
        day = parse_date(value)
    except ValueError:
        day = None
    if day is None or not in_date_range(day):
        errors.append(t(bad, value=value))
        return None
    return day


def read_filters(session) -> tuple[LogFilters, list[str]]:
    """The filters of this request, checked against the user's scope (404 outside it)."""
    errors: list[str] = []
    f = LogFilters(institution_id=int_arg("institution_id"), cohort_id=int_arg("cohort_id"))
    if f.cohort_id is not None:
        cohort = cohort_or_404(session, f.cohort_id)
        if f.institution_id is not None and cohort.institution_id != f.institution_id:
            errors.append(t("replylog.cohort_not_in_institution"))
    if f.institution_id is not None:
        scope = current_user.scope_institution_id
        if session.get(Institution, f.institution_id) is None or (
                scope is not None and scope != f.institution_id):
            abort(404)
    direction = request.args.get("direction", "")
    f.direction = direction if direction in DIRECTIONS else ""
    status = request.args.get("status", "")
    f.status = status if status in STATUSES else ""
    f.text = " ".join((request.args.get("q") or "").split())[:MAX_TEXT]
    f.date_from = date_arg("from", errors)
    f.date_to = date_arg("to", errors)
    if f.date_from and f.date_to and f.date_to < f.date_from:
        errors.append(t("replylog.dates_reversed"))
        f.date_from, f.date_to = f.date_to, f.date_from
    f.needs_help = request.args.get("needs_help") in ("1", "on", "true")
    return f, errors


def _page(session, filters: LogFilters) -> tuple[list[Any], bool, bool]:
    """One page of messages newest first; whether older and newer pages exist.

    Two steps: the ids of the page (a narrow query the database can answer from an index),
    then those rows' columns.
    """
    before_id, after_id = int_arg("before_id"), int_arg("after_id")
    wanted = filters.for_export(session)
    if wanted.get("needs_help"):
        wanted["needs_help"] = needs_help_ids(session)
    ids = filter_messages(select(Message.id), wanted)
    if after_id is not None and before_id is None:
        found = list(session.scalars(ids.where(Message.id > after_id)
                                     .order_by(Message.id.asc()).limit(PAGE_SIZE + 1)))
        has_older, has_newer = True, len(found) > PAGE_SIZE
    else:
        if before_id is not None:
            ids = ids.where(Message.id < before_id)
        found = list(session.scalars(ids.order_by(Message.id.desc()).limit(PAGE_SIZE + 1)))
        has_older, has_newer = len(found) > PAGE_SIZE, before_id is not None
    page = found[:PAGE_SIZE]
    if not page:
        return [], False, has_newer
    messages = session.execute(
        select(Message.id, Message.created_at, Message.direction, Message.kind, Message.body,
               Message.media_url, Message.media_type, Message.status, Message.error_code,
               Message.phone, Message.graduate_id, Message.cohort_id)
        .where(Message.id.in_(page)).order_by(Message.id.desc())).all()
    return messages, has_older, has_newer


def _rows(session, messages: list[Any], cohorts: dict[int, Any]) -> list[dict[str, Any]]:
    zone = get_settings().tz
    graduate_ids = {m.graduate_id for m in messages if m.graduate_id is not None}
    names: dict[int, str] = {}
    help_notes: dict[int, str] = {}
    if graduate_ids:
        names = dict(session.execute(select(Graduate.id, Graduate.name)
                                     .where(Graduate.id.in_(graduate_ids))).all())
        help_notes = dict(session.execute(
            select(Graduate.id, ProgressReport.needs_help)
            .join(ProgressReport, ProgressReport.id == Graduate.help_report_id)
            .where(Graduate.id.in_(graduate_ids))).all())
    rows = []
    for m in messages:
        cohort = cohorts.get(m.cohort_id)
        rows.append({
            "id": m.id, "at": m.created_at.astimezone(zone), "direction": m.direction,
            "kind": m.kind, "body": m.body,
            # Only web addresses become links (never javascript: or data: URLs).
            "media_url": m.media_url if (m.media_url or "").startswith(("https://", "http://"))
            else None,
            "media_type": m.media_type, "status": m.status, "error_code": m.error_code,
            "phone": m.phone, "graduate_id": m.graduate_id,
            "graduate": names.get(m.graduate_id), "help": help_notes.get(m.graduate_id),
            "graduate_url": (console_link("staff.graduate", graduate_id=m.graduate_id)
                             if m.graduate_id is not None else None),
            "cohort": cohort,
            "cohort_url": (console_link("staff.timeline", cohort_id=m.cohort_id)
                           if cohort is not None else None),
        })
    return rows


@bp.get("/log")
@login_required
def log():
    """The reply log: filters, one page of messages, links to older and newer pages."""
    with page_session() as session:
        filters, errors = read_filters(session)
        institutions, cohorts, choose_first = log_cohort_options(session, filters)
        messages, has_older, has_newer = _page(session, filters)
        rows = _rows(session, messages, page_cohorts(session, messages))
        args = filters.query_args()
        labels = {**{f"direction_{d}": direction_label(d) for d in DIRECTIONS},
                  **{f"status_{s}": status_label(s) for s in STATUSES}}
        return render_template(
            "staff/replylog.html", rows=rows, filters=filters, errors=errors, cohorts=cohorts,
            institutions=[tuple(i) for i in institutions],
            choose_institution_first=choose_first, directions=DIRECTIONS, statuses=STATUSES,
            labels=labels,
            older_url=url_for("staff.log", **args, before_id=rows[-1]["id"])
            if has_older and rows else None,
            newer_url=url_for("staff.log", **args, after_id=rows[0]["id"])
            if has_newer and rows else None,
            newest_url=url_for("staff.log", **args)
            if request.args.get("before_id") or request.args.get("after_id") else None,
            export_csv=url_for("staff.log_export", fmt="csv", **args),
            export_xlsx=url_for("staff.log_export", fmt="xlsx", **args))


@bp.get("/log/export.<any(csv, xlsx):fmt>")
@login_required
def log_export(fmt: str):
    """The filtered reply log as a CSV or XLSX download (audited as ``export``)."""
    stamp = datetime.now(get_settings().tz).strftime("%Y%m%d-%H%M")
    name = f"kabar-balasan-{stamp}.{fmt}"
    with tempfile.TemporaryDirectory(prefix="kabar-log-") as folder:
        path = Path(folder) / name
        with page_session() as session:
            filters, _errors = read_filters(session)
            export(session, "messages", fmt, path, actor=current_user.name,
                   filters=filters.for_export(session), tz=get_settings().tz,
                   audit_db=get_db(),
                   header=[t(f"replylog.export.{code}") for code in HEADERS["messages"]],
                   present=_readable)
        # Opened before the folder goes: the open file outlives its name (POSIX).
        handle = path.open("rb")
    return send_file(handle, mimetype=MIMETYPES[fmt], as_attachment=True, download_name=name,
                     max_age=0)


_COLUMN = {code: i for i, code in enumerate(HEADERS["messages"])}


def _readable(row: list[Any]) -> list[Any]:
    """An exported message as the page shows it: direction, kind and status in the reader's
    language, times as dd/mm/yyyy HH:MM in the office's time zone."""
    row = list(row)
    row[_COLUMN["direction"]] = direction_label(row[_COLUMN["direction"]])
    row[_COLUMN["kind"]] = kind_label(row[_COLUMN["kind"]])
    row[_COLUMN["status"]] = status_label(row[_COLUMN["status"]])
    for column in ("created_at", "sent_at"):
        value = row[_COLUMN[column]]
        if value:
            row[_COLUMN[column]] = datetime.fromisoformat(value).strftime(DATETIME_FORMAT)
    return row
