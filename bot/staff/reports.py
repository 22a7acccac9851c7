"""The office's own reports: the outcome export and the tracer report, and training dates.

- ``/staff/outcomes``: choose LPKS, cohort and a period of rounds, download the outcome rows
  (``bot.outcomes``) as XLSX or CSV in the console's language.
- ``/staff/tracer``: the tracer report (``bot.tracer``) for cohorts whose training ended in a
  period, as a printable page (A4, the office's name and logo from ``[office]``) and XLSX.
- ``/staff/tracer/cohorts/<id>/dates``: a cohort's training start and end (staff and admins).

Viewers see and download only their institution; anything outside the scope is a 404.
Every download is written to the audit log as ``export``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from bot import get_db, get_settings
from bot.auditing import record
from bot.config import LOGO_TYPES
from bot.exports import _filter
from bot.models import CheckInRound, Cohort, Institution, ProgressReport, audit
from bot.outcomes import dmy, parse_dmy
from bot.staff import bp
from bot.staff.auth import cohort_or_404
from bot.staff.i18n import current_language, t
from bot.staff.reads import page_session
from bot.staff.replylog import MIMETYPES, cohort_choices, date_arg, int_arg, scoped_period


@dataclass
class ReportFilters:
    institution_id: int | None = None
    cohort_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    def args(self) -> dict[str, Any]:
        values = {"institution_id": self.institution_id, "cohort_id": self.cohort_id,
                  "from": dmy(self.date_from) or None, "to": dmy(self.date_to) or None}
        return {k: v for k, v in values.items() if v is not None}


def _institutions(session) -> list[Any]:
    stmt = select(Institution.id, Institution.name).order_by(Institution.name)
    if current_user.scope_institution_id is not None:
        stmt = stmt.where(Institution.id == current_user.scope_institution_id)
    return list(session.execute(stmt))


def read_filters(session) -> tuple[ReportFilters, list[str]]:
    """This request's filters, in the user's scope (a cohort or LPKS outside it: 404)."""
    errors: list[str] = []
    f = ReportFilters(institution_id=int_arg("institution_id"), cohort_id=int_arg("cohort_id"),
                      date_from=date_arg("from", errors, "outcomes.bad_date"),
                      date_to=date_arg("to", errors, "outcomes.bad_date"))
    scope = current_user.scope_institution_id
    if f.institution_id is not None:
        if session.get(Institution, f.institution_id) is None or (
                scope is not None and f.institution_id != scope):
            abort(404)
    if f.cohort_id is not None:
        cohort_or_404(session, f.cohort_id)
    if f.date_from and f.date_to and f.date_to < f.date_from:
        f.date_from, f.date_to = f.date_to, f.date_from
    return f, errors


def export_filters(session, f: ReportFilters) -> dict[str, Any]:
    """The filters for ``bot.outcomes``: scope added, local days as times."""
    return scoped_period(session, f.cohort_id, f.institution_id, f.date_from, f.date_to)


# --- outcome export ---------------------------------------------------------------------------

@bp.get("/outcomes")
@login_required
def outcomes():
    with page_session() as session:
        f, errors = read_filters(session)
        chosen = export_filters(session, f)
        stmt = (select(func.count()).select_from(ProgressReport)
                .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
                .join(Cohort, CheckInRound.cohort_id == Cohort.id))
        count = session.scalar(_filter(stmt, chosen, CheckInRound.scheduled_for))
        args = f.args()
        return render_template(
            "staff/outcomes.html", filters=f, errors=errors, count=count,
            institutions=_institutions(session), cohorts=cohort_choices(session), dmy=dmy,
            download_xlsx=url_for("staff.outcomes_export", fmt="xlsx", **args),
            download_csv=url_for("staff.outcomes_export", fmt="csv", **args))


@bp.get("/outcomes/export.<any(csv, xlsx):fmt>")
@login_required
def outcomes_export(fmt: str):
    """The outcome rows as a download in the console's language (audited as ``export``)."""
    from bot.outcomes import export

    settings = get_settings()
    stamp = datetime.now(settings.tz).strftime("%Y%m%d-%H%M")
    language = current_language()
    name = f"kabar-{'outcomes' if language == 'en' else 'hasil'}-{stamp}.{fmt}"
    with tempfile.TemporaryDirectory(prefix="kabar-outcomes-") as folder:
        path = Path(folder) / name
        with page_session() as session:
            f, _errors = read_filters(session)
            export(session, fmt, path, actor=current_user.name,
                   filters=export_filters(session, f), language=language, tz=settings.tz,
                   audit_db=get_db())
        handle = path.open("rb")
    return send_file(handle, mimetype=MIMETYPES[fmt], as_attachment=True, download_name=name,
                     max_age=0)


# --- tracer report ----------------------------------------------------------------------------

def decimal(value: float | None) -> str:
    """One decimal, with the decimal comma in Indonesian ('3,7'); '–' for none."""
    if value is None:
        return "–"
    text = f"{value:.1f}"
    return text.replace(".", ",") if current_language() == "id" else text


def today() -> date:
    """Today in the app timezone: which milestones are due."""
    return datetime.now(get_settings().tz).date()


def _tracer_report(session, f: ReportFilters):
    from bot.tracer import build

    scope = current_user.scope_institution_id
    return build(session, date_from=f.date_from, date_to=f.date_to,
                 institution_id=f.institution_id if f.institution_id is not None else scope,
                 cohort_ids=[f.cohort_id] if f.cohort_id is not None else None,
                 today=today())


@bp.get("/tracer")
@login_required
def tracer():
    from bot.tracer import MILESTONES, percent

    settings = get_settings()
    with page_session() as session:
        f, errors = read_filters(session)
        report = _tracer_report(session, f)
        return render_template(
            "staff/tracer.html", filters=f, errors=errors, report=report,
            milestones=MILESTONES, percent=percent, dmy=dmy, decimal=decimal,
            institutions=_institutions(session), office=settings.office.name,
            logo=url_for("staff.office_logo") if _logo_file() else None,
            download_xlsx=url_for("staff.tracer_export", **f.args()))


@bp.get("/tracer/export.xlsx")
@login_required
def tracer_export():
    from bot.outcomes import texts
    from bot.tracer import write_xlsx

    settings = get_settings()
    stamp = datetime.now(settings.tz).strftime("%Y%m%d-%H%M")
    name = f"kabar-tracer-{stamp}.xlsx"
    with tempfile.TemporaryDirectory(prefix="kabar-tracer-") as folder:
        path = Path(folder) / name
        with page_session() as session:
            f, _errors = read_filters(session)
            report = _tracer_report(session, f)
            write_xlsx(report, path, texts(current_language()), settings.office.name)
        # After the read, in a write transaction of its own (bot.auditing).
        record(get_db(), current_user.name, "export", what="tracer", format="xlsx",
               file=name, rows=len(report.rows), filters=f.args())
        handle = path.open("rb")
    return send_file(handle, mimetype=MIMETYPES["xlsx"], as_attachment=True,
                     download_name=name, max_age=0)


def _logo_file() -> Path | None:
    configured = get_settings().office.logo_path
    if not configured:
        return None
    path = Path(configured)
    return path if path.is_file() and path.suffix.lower() in LOGO_TYPES else None


@bp.get("/office-logo")
@login_required
def office_logo():
    """The configured office logo (``office.logo_path``); 404 when none is usable."""
    path = _logo_file()
    if path is None:
        abort(404)
    return send_file(path, mimetype=LOGO_TYPES[path.suffix.lower()], max_age=3600)


# --- training dates ---------------------------------------------------------------------------

@bp.route("/tracer/cohorts/<int:cohort_id>/dates", methods=["GET", "POST"])
@login_required
def training_dates(cohort_id: int):
    """A cohort's training start and end, typed as dd/mm/yyyy (staff and admins)."""
    if not current_user.can_write:
        abort(403)
    errors: list[str] = []
    with get_db().session() as session:
        cohort = cohort_or_404(session, cohort_id)
        values = {"start": dmy(cohort.training_start), "end": dmy(cohort.training_end)}
        if request.method == "POST":
            parsed: dict[str, date | None] = {}
            for key in ("start", "end"):
                text = (request.form.get(key) or "").strip()[:40]
                values[key] = text
                try:
                    parsed[key] = parse_dmy(text) if text else None
                except ValueError:
                    errors.append(t("training_dates.bad_date",
                                    field=t(f"training_dates.{key}"), value=text))
            if not errors and parsed["start"] and parsed["end"] \
                    and parsed["end"] < parsed["start"]:
                errors.append(t("training_dates.end_before_start", start=values["start"],
                                end=values["end"]))
            if not errors:
                before = {"training_start": str(cohort.training_start or ""),
                          "training_end": str(cohort.training_end or "")}
                cohort.training_start, cohort.training_end = parsed["start"], parsed["end"]
                audit(session, current_user.name, "cohort.training_dates", cohort=cohort.name,
                      cohort_id=cohort.id, before=before,
                      after={"training_start": str(parsed["start"] or ""),
                             "training_end": str(parsed["end"] or "")})
                flash(t("training_dates.saved", cohort=cohort.name))
                return redirect(url_for("staff.tracer"))
        return render_template("staff/training_dates.html", cohort=cohort, values=values,
                               errors=errors), (400 if errors else 200)
