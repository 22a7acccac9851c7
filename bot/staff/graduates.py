"""A graduate's page: profile, every round's answers beside the raw text, full history.

Staff and admins may correct what Kabar understood from a round's answers; the old and new
values go to the audit log with the change. Viewers see no form, and their POST is a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Length

from bot import get_db
from bot.models import (
    EMPLOYMENT_STATUSES,
    READ_HOW,
    READ_STAFF,
    CheckInRound,
    Cohort,
    ConsentEvent,
    Graduate,
    Message,
    ProgressReport,
    audit,
)
from bot.staff import bp
from bot.staff.auth import can_write, graduate_or_404
from bot.staff.i18n import t
from bot.staff.reads import page_session
from bot.staff.timeline import cursor_arg, message_page, when

# Interpreted field -> the raw_answers keys its text came from (see bot.conversations.checkin).
RAW_KEYS = {
    "employment_status": ("status",),
    "employer": ("employer", "business"),
    "job_title": (),
    "uses_training_skill": ("uses_skill",),
    "wants_job_alerts": ("job_alerts",),
    "skill_rating": ("rating",),
    "needs_help": ("help",),
}
CORRECTABLE = ("employment_status", "employer", "uses_training_skill", "skill_rating",
               "needs_help")


class CorrectionForm(FlaskForm):
    """Staff's correction of one report's interpretation; empty means unknown."""

    employment_status = SelectField()
    employer = StringField(validators=[Length(max=200)])
    uses_training_skill = SelectField()
    skill_rating = SelectField()
    needs_help = TextAreaField(validators=[Length(max=1000)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unknown = ("", t("graduate.unknown"))
        self.employment_status.choices = [unknown] + [
            (s, t(f"graduate.statuses.{s}")) for s in EMPLOYMENT_STATUSES]
        self.uses_training_skill.choices = [unknown, ("yes", t("graduate.yes")),
                                            ("no", t("graduate.no"))]
        self.skill_rating.choices = [unknown] + [(str(n), str(n)) for n in range(1, 6)]

    @classmethod
    def of(cls, report: ProgressReport) -> CorrectionForm:
        """The form filled with the report's current values (not from the request)."""
        return cls(formdata=None, data=_form_values(report))

    def values(self) -> dict[str, Any]:
        """The submitted values as the model stores them."""
        skill = self.uses_training_skill.data
        return {
            "employment_status": self.employment_status.data or None,
            "employer": (self.employer.data or "").strip() or None,
            "uses_training_skill": {"yes": True, "no": False}.get(skill),
            "skill_rating": int(self.skill_rating.data) if self.skill_rating.data else None,
            "needs_help": (self.needs_help.data or "").strip() or None,
        }


def _form_values(report: ProgressReport) -> dict[str, str]:
    skill = report.uses_training_skill
    return {
        "employment_status": report.employment_status or "",
        "employer": report.employer or "",
        "uses_training_skill": "" if skill is None else ("yes" if skill else "no"),
        "skill_rating": str(report.skill_rating) if report.skill_rating else "",
        "needs_help": report.needs_help or "",
    }


@dataclass
class AnswerRow:
    label: str
    raw: list[str]
    understood: str
    how: str = ""  # how Kabar read it (ProgressReport.readings), in words


@dataclass
class ReportView:
    report: ProgressReport
    round: CheckInRound
    rows: list[AnswerRow]
    form: CorrectionForm | None


def _understood(field: str, value: Any) -> str:
    if value is None or value == "":
        return "–"
    if field == "employment_status":
        return t(f"graduate.statuses.{value}")
    if isinstance(value, bool):
        return t("graduate.yes") if value else t("graduate.no")
    if field == "skill_rating":
        return f"{value} / 5"
    return str(value)


def _how(reading: Any) -> str:
    return t(f"graduate.how.{reading}") if reading in READ_HOW else ""


def _raw(answers: Any, keys: tuple[str, ...]) -> list[str]:
    if not isinstance(answers, dict):
        return []
    found: list[str] = []
    for key in keys:
        value = answers.get(key)
        values = value if isinstance(value, list) else [] if value is None else [value]
        found += [str(v) for v in values]
    return found


def answer_rows(report: ProgressReport) -> list[AnswerRow]:
    """Each question: the raw replies beside the interpretation (and raw keys nobody mapped)."""
    answers = report.raw_answers or {}
    readings = report.readings if isinstance(report.readings, dict) else {}
    rows = [AnswerRow(t(f"graduate.fields.{field}"), _raw(answers, keys),
                      _understood(field, getattr(report, field)),
                      _how(readings.get(field)))
            for field, keys in RAW_KEYS.items()
            if keys or getattr(report, field) is not None]
    known = {key for keys in RAW_KEYS.values() for key in keys}
    if isinstance(answers, dict):
        rows += [AnswerRow(str(key), _raw(answers, (key,)), "")
                 for key in answers if key not in known]
    return rows


def _page(session: Session, graduate: Graduate, failed: tuple[int, CorrectionForm] | None = None,
          status: int = 200):
    cohort = session.get(Cohort, graduate.cohort_id) if graduate.cohort_id else None
    writable = current_user.can_write
    reports = []
    for report, round_ in session.execute(
            select(ProgressReport, CheckInRound)
            .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
            .where(ProgressReport.graduate_id == graduate.id)
            .order_by(CheckInRound.scheduled_for.desc(), ProgressReport.id.desc())):
        form = None
        if writable:
            form = failed[1] if failed and failed[0] == report.id else CorrectionForm.of(report)
        reports.append(ReportView(report, round_, answer_rows(report), form))
    last = session.scalar(select(Message).where(Message.graduate_id == graduate.id)
                          .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))
    consent = session.scalars(select(ConsentEvent).where(ConsentEvent.graduate_id == graduate.id)
                              .order_by(ConsentEvent.created_at.desc()).limit(20)).all()
    page = message_page(session, Message.graduate_id == graduate.id, before=cursor_arg("before"),
                        after=cursor_arg("after"), names=False)
    html = render_template("staff/graduate.html", graduate=graduate, cohort=cohort,
                           institution=cohort.institution.name if cohort else None,
                           reports=reports, last=last, consent=consent, page=page, when=when)
    return html, status


@bp.get("/graduates/<int:graduate_id>")
@login_required
def graduate(graduate_id: int):
    """Profile, every round's answers, and the whole message history."""
    with page_session() as session:
        return _page(session, graduate_or_404(session, graduate_id))


@bp.post("/graduates/<int:graduate_id>/reports/<int:report_id>")
@can_write
def graduate_correct(graduate_id: int, report_id: int):
    """Store staff's correction of one report and audit the old and new values."""
    with get_db().session() as session:
        graduate = graduate_or_404(session, graduate_id)
        # The graduate before their report, as the inbox locks them (bot.summaries): a reply
        # being handled finishes first, and the two never wait on each other.
        session.execute(select(Graduate.id).where(Graduate.id == graduate.id).with_for_update())
        report = session.scalar(select(ProgressReport).where(
            ProgressReport.id == report_id, ProgressReport.graduate_id == graduate.id))
        if report is None:
            abort(404)
        form = CorrectionForm()
        if not form.validate_on_submit():
            return _page(session, graduate, failed=(report.id, form), status=400)
        old = {field: getattr(report, field) for field in CORRECTABLE}
        new = form.values()
        changes = {field: {"old": old[field], "new": new[field]}
                   for field in CORRECTABLE if old[field] != new[field]}
        if not changes:
            flash(t("graduate.unchanged"))
        else:
            for field, change in changes.items():
                setattr(report, field, change["new"])
            report.readings = {**(report.readings or {}), **{f: READ_STAFF for f in changes}}
            if "employment_status" in changes:
                report.status_guessed = False
                report.not_understood = False
            audit(session, current_user.name, "report.corrected", graduate_id=graduate.id,
                  report_id=report.id, round_id=report.round_id, changes=changes)
            flash(t("graduate.corrected", fields=", ".join(
                t(f"graduate.fields.{field}") for field in changes)))
    return redirect(url_for("staff.graduate", graduate_id=graduate_id, _anchor=f"r{report_id}"))

