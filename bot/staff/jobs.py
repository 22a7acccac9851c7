"""Job openings: list, create, edit, close; send one to chosen cohorts after a preview of exactly
who receives which text; live delivery progress; the interest shortlist, exported for the
employer as CSV or XLSX.

Roles: admin and staff write; a viewer reads only the openings sent to their institution's
cohorts (or that their graduates answered), and sees only their own graduates' messages and
interests. Every change, send and export is in the audit log (``bot.broadcasts`` writes the
entries of changes and sends, this module those of exports).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from pathlib import Path

from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot import get_db, get_settings
from bot.broadcasts import (
    TEXT_LIMIT,
    BroadcastError,
    JobDraft,
    RecipientsChanged,
    broadcast_job,
    create_job,
    job_message,
    latest_reports,
    recipients_fingerprint,
    set_job_closed,
    target_recipients,
    update_job,
)
from bot.cleaning import id_value
from bot.delivery import COUNT_KEYS, delivery_counts
from bot.models import (
    EMPLOYMENT_STATUSES,
    MSG_FAILED,
    MSG_UNDELIVERED,
    Broadcast,
    Cohort,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    utcnow,
)
from bot.staff import bp
from bot.staff.auth import can_write, scoped_cohort_ids, visible_cohorts
from bot.staff.formats import DATETIME_FORMAT, clock_text
from bot.staff.i18n import t
from bot.staff.reads import page_session
from bot.staff.timeline import local, wa_format

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8",
                  "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FAILURES_SHOWN = 50
# How a message status counts in the progress (as bot.delivery.delivery_counts counts it).
_COUNT_OF = {"pending": "queued", "sending": "queued", "undelivered": "failed"}


# --- helpers shared with the announcements page ---------------------------------------------

def whatsapp_html(text: str) -> Markup:
    """A message as WhatsApp shows it: escaped, with *bold* and _italic_ (for previews)."""
    return wa_format(text)


def local_time(moment: datetime | None, fmt: str = DATETIME_FORMAT) -> str:
    """A stored (UTC) time in the app's time zone, for display and exports."""
    return "" if moment is None else local(moment).strftime(fmt)


def progress_of(session: Session, broadcast: Broadcast, scope: list[int] | None) -> dict:
    """Delivery counts, recipients and failures of one broadcast, limited to ``scope``."""
    if scope is None:
        counts = delivery_counts(session, broadcast_id=broadcast.id)
    else:
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for status, n in session.execute(
                select(Message.status, func.count(Message.id))
                .where(Message.broadcast_id == broadcast.id, Message.cohort_id.in_(scope))
                .group_by(Message.status)):
            key = _COUNT_OF.get(status, status)
            if key in counts:
                counts[key] += n
    failed = select(Message, Graduate.name).outerjoin(Graduate, Message.graduate_id == Graduate.id)
    failed = failed.where(Message.broadcast_id == broadcast.id,
                          Message.status.in_((MSG_FAILED, MSG_UNDELIVERED)))
    if scope is not None:
        failed = failed.where(Message.cohort_id.in_(scope))
    failures = [{"name": name or "", "phone": m.phone, "code": m.error_code or "",
                 "error": m.error_message or ""}
                for m, name in session.execute(failed.order_by(Message.id).limit(FAILURES_SHOWN))]
    return {"counts": counts, "total": sum(counts.values()), "failures": failures}


def page(template: str, **context) -> str:
    """Render a console page of these modules, with their display helpers."""
    return render_template(template, local_time=local_time, status_label=status_label,
                           **context)


def session_for_request():
    """A writing session for a POST; for a GET one that takes no writer lock (SQLite)."""
    db = get_db()
    return db.session() if request.method == "POST" else page_session()


def selected_ids(values: list[str]) -> list[int]:
    """Ids from repeated form fields, ignoring anything that is not a number."""
    return sorted({n for n in map(id_value, values) if n is not None})


# --- scope ----------------------------------------------------------------------------------

def _visible(scope: list[int]):
    """A job a viewer may see: sent to one of their cohorts, or answered by their graduate."""
    sent = (select(Message.id).join(Broadcast, Message.broadcast_id == Broadcast.id)
            .where(Broadcast.job_id == JobOpening.id, Message.cohort_id.in_(scope)).exists())
    answered = (select(Interest.id).join(Graduate, Interest.graduate_id == Graduate.id)
                .where(Interest.job_id == JobOpening.id, Graduate.cohort_id.in_(scope)).exists())
    return or_(sent, answered)


def job_or_404(session: Session, job_id: int) -> JobOpening:
    scope = scoped_cohort_ids(session)
    stmt = select(JobOpening).where(JobOpening.id == job_id)
    if scope is not None:
        stmt = stmt.where(_visible(scope))
    job = session.scalar(stmt)
    if job is None:
        abort(404)
    return job


def _today() -> date:
    return utcnow().astimezone(get_settings().tz).date()


def _state(job: JobOpening, today: date) -> str:
    if job.closed:
        return "closed"
    return "open" if job.is_open(today) else "expired"


# --- list -----------------------------------------------------------------------------------

@bp.get("/jobs")
@login_required
def jobs():
    """Open (or closed) job openings with how many received each and how many are interested."""
    shown = request.args.get("state", "open")
    if shown not in ("open", "closed"):
        shown = "open"
    today = _today()
    with page_session() as session:
        scope = scoped_cohort_ids(session)
        stmt = select(JobOpening).order_by(JobOpening.created_at.desc(), JobOpening.id.desc())
        if scope is not None:
            stmt = stmt.where(_visible(scope))
        every = list(session.scalars(stmt))
        listed = [j for j in every if (_state(j, today) == "open") == (shown == "open")]
        ids = [j.id for j in listed]
        interests = _count_by_job(session, select(Interest.job_id, func.count(Interest.id))
                                  .join(Graduate, Interest.graduate_id == Graduate.id)
                                  .where(Interest.job_id.in_(ids))
                                  .group_by(Interest.job_id), scope, Graduate.cohort_id)
        reached = _count_by_job(session, select(Broadcast.job_id, func.count(Message.id))
                                .join(Message, Message.broadcast_id == Broadcast.id)
                                .where(Broadcast.job_id.in_(ids))
                                .group_by(Broadcast.job_id), scope, Message.cohort_id)
        rows = [{"job": j, "state": _state(j, today), "interests": interests.get(j.id, 0),
                 "reached": reached.get(j.id, 0)} for j in listed]
        open_count = sum(1 for j in every if _state(j, today) == "open")
        return page("staff/jobs.html", rows=rows, shown=shown,
                               open_count=open_count, closed_count=len(every) - open_count)


def _count_by_job(session: Session, stmt, scope: list[int] | None, cohort_column) -> dict:
    if scope is not None:
        stmt = stmt.where(cohort_column.in_(scope))
    return dict(session.execute(stmt).all())


# --- create, edit, close --------------------------------------------------------------------

@dataclass
class JobForm:
    """The job fields as typed, with the errors per field (in the console's language)."""

    title: str = ""
    employer: str = ""
    location: str = ""
    skill: str = ""
    deadline: str = ""

    @classmethod
    def from_job(cls, job: JobOpening) -> JobForm:
        return cls(job.title, job.employer, job.location, job.skill or "",
                   job.deadline.isoformat() if job.deadline else "")

    @classmethod
    def from_request(cls) -> JobForm:
        return cls(**{name: (request.form.get(name) or "").strip()
                      for name in ("title", "employer", "location", "skill", "deadline")})

    def validate(self, past_ok: date | None = None) -> tuple[JobDraft | None, dict[str, str]]:
        """The draft, or the errors by field. ``past_ok``: a past deadline allowed (unchanged)."""
        errors: dict[str, str] = {}
        for name in ("title", "employer", "location"):
            if not getattr(self, name):
                errors[name] = t("jobs.error.required")
        for name in ("title", "employer", "location", "skill"):
            if len(getattr(self, name)) > TEXT_LIMIT:
                errors[name] = t("jobs.error.too_long", limit=TEXT_LIMIT)
        deadline = None
        if self.deadline:
            try:
                deadline = date.fromisoformat(self.deadline)
            except ValueError:
                errors["deadline"] = t("jobs.error.deadline_format")
            else:
                if deadline < _today() and deadline != past_ok:
                    errors["deadline"] = t("jobs.error.deadline_past")
        if errors:
            return None, errors
        return JobDraft(title=self.title, employer=self.employer, location=self.location,
                        skill=self.skill or None, deadline=deadline), {}


@bp.route("/jobs/new", methods=["GET", "POST"])
@can_write
def job_new():
    """A new job opening; saved, it goes straight to the send form."""
    form, errors = JobForm(), {}
    if request.method == "POST":
        form = JobForm.from_request()
        draft, errors = form.validate()
        if draft is not None:
            try:
                with get_db().session() as session:
                    job = create_job(session, get_settings(), draft, actor=current_user.name)
                    job_id, code = job.id, job.code
            except BroadcastError as exc:
                errors = {"form": str(exc)}
            else:
                flash(t("jobs.flash.created", code=code))
                return redirect(url_for("staff.job_send", job_id=job_id))
    return page("staff/jobs_form.html", form=form, errors=errors, job=None), \
        400 if errors else 200


@bp.route("/jobs/<int:job_id>/edit", methods=["GET", "POST"])
@can_write
def job_edit(job_id: int):
    """Change a job's text and deadline (messages already sent keep theirs)."""
    with session_for_request() as session:
        job = job_or_404(session, job_id)
        form, errors = JobForm.from_job(job), {}
        if request.method == "POST":
            form = JobForm.from_request()
            draft, errors = form.validate(past_ok=job.deadline)
            if draft is not None:
                try:
                    changes = update_job(session, get_settings(), job, draft,
                                         actor=current_user.name)
                except BroadcastError as exc:
                    errors = {"form": str(exc)}
                else:
                    flash(t("jobs.flash.saved") if changes else t("jobs.flash.unchanged"))
                    return redirect(url_for("staff.job", job_id=job.id))
        return page("staff/jobs_form.html", form=form, errors=errors, job=job), \
            400 if errors else 200


@bp.post("/jobs/<int:job_id>/close")
@can_write
def job_close(job_id: int):
    return _set_closed(job_id, True)


@bp.post("/jobs/<int:job_id>/reopen")
@can_write
def job_reopen(job_id: int):
    return _set_closed(job_id, False)


def _set_closed(job_id: int, closed: bool):
    with get_db().session() as session:
        job = job_or_404(session, job_id)
        if set_job_closed(session, job, closed, actor=current_user.name):
            flash(t("jobs.flash.closed" if closed else "jobs.flash.reopened", code=job.code))
    return redirect(url_for("staff.job", job_id=job_id))


# --- one job --------------------------------------------------------------------------------

@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id: int):
    """A job opening: its text, every send with live delivery progress, the shortlist."""
    settings = get_settings()
    with page_session() as session:
        job = job_or_404(session, job_id)
        scope = scoped_cohort_ids(session)
        sends = []
        for bc in _broadcasts(session, job, scope):
            sends.append({"broadcast": bc, **progress_of(session, bc, scope)})
        shortlist = _shortlist(session, job, scope)
        return page(
            "staff/jobs_detail.html", job=job, state=_state(job, _today()), sends=sends,
            shortlist=shortlist, count_keys=COUNT_KEYS,
            message=whatsapp_html(job_message(settings.app.language, job)))


@bp.get("/jobs/<int:job_id>/progress")
@login_required
def job_progress(job_id: int):
    """Delivery counts of each send of the job and the shortlist size (polled by the page)."""
    with page_session() as session:
        job = job_or_404(session, job_id)
        scope = scoped_cohort_ids(session)
        sends = {str(bc.id): progress_of(session, bc, scope)
                 for bc in _broadcasts(session, job, scope)}
        interests = _interest_count(session, job, scope)
    response = jsonify({"broadcasts": sends, "interests": interests, "updated": clock_text()})
    response.headers["Cache-Control"] = "no-store"
    return response


def _broadcasts(session: Session, job: JobOpening, scope: list[int] | None) -> list[Broadcast]:
    stmt = (select(Broadcast).where(Broadcast.job_id == job.id)
            .order_by(Broadcast.created_at.desc(), Broadcast.id.desc()))
    if scope is not None:
        stmt = stmt.where(select(Message.id).where(Message.broadcast_id == Broadcast.id,
                                                   Message.cohort_id.in_(scope)).exists())
    return list(session.scalars(stmt))


@dataclass
class Candidate:
    """One row of the shortlist."""

    graduate_id: int
    name: str
    phone: str
    institution: str
    cohort: str
    interested_at: datetime
    status: str | None
    employer: str | None
    rating: int | None


def _shortlist(session: Session, job: JobOpening, scope: list[int] | None) -> list[Candidate]:
    stmt = (select(Interest, Graduate, Cohort.name, Institution.name)
            .join(Graduate, Interest.graduate_id == Graduate.id)
            .outerjoin(Cohort, Graduate.cohort_id == Cohort.id)
            .outerjoin(Institution, Cohort.institution_id == Institution.id)
            .where(Interest.job_id == job.id)
            .order_by(Interest.created_at, Interest.id))
    if scope is not None:
        stmt = stmt.where(Graduate.cohort_id.in_(scope))
    found = session.execute(stmt).all()
    reports = latest_reports(session, [g.id for _, g, _, _ in found])
    rows = []
    for interest, graduate, cohort, institution in found:
        report = reports.get(graduate.id)
        rows.append(Candidate(graduate.id, graduate.name, graduate.phone, institution or "",
                              cohort or "", interest.created_at,
                              report.employment_status if report else None,
                              report.employer if report else None,
                              report.skill_rating if report else None))
    return rows


def _interest_count(session: Session, job: JobOpening, scope: list[int] | None) -> int:
    stmt = (select(func.count(Interest.id)).join(Graduate, Interest.graduate_id == Graduate.id)
            .where(Interest.job_id == job.id))
    if scope is not None:
        stmt = stmt.where(Graduate.cohort_id.in_(scope))
    return session.scalar(stmt) or 0


def status_label(status: str | None) -> str:
    return t(f"jobs.status.{status}") if status in EMPLOYMENT_STATUSES else t("jobs.status.none")


# --- send -----------------------------------------------------------------------------------

@dataclass
class SendForm:
    """What staff chose on the send form."""

    cohort_ids: list[int]
    skill: str
    statuses: list[str]

    @classmethod
    def from_values(cls, values, job: JobOpening) -> SendForm:
        """The choices in ``values``; the skill filter starts as the job's skill."""
        skill = values.get("skill")
        if skill is None:
            skill = job.skill or ""
        return cls(cohort_ids=selected_ids(values.getlist("cohort")), skill=skill.strip(),
                   statuses=[s for s in values.getlist("status") if s in EMPLOYMENT_STATUSES])


@bp.route("/jobs/<int:job_id>/send", methods=["GET", "POST"])
@can_write
def job_send(job_id: int):
    """Choose cohorts and filters, preview exactly who receives which text, then confirm."""
    settings = get_settings()
    with session_for_request() as session:
        job = job_or_404(session, job_id)
        cohorts = [c for c in visible_cohorts(session) if c.active]
        allowed = {c.id for c in cohorts}
        values = request.form if request.method == "POST" else request.args
        form = SendForm.from_values(values, job)
        form.cohort_ids = [i for i in form.cohort_ids if i in allowed]
        error = warning = None
        status = 200
        state = _state(job, _today())
        wants_preview = request.method == "POST" or "preview" in request.args
        if wants_preview and state != "open":
            error, status, wants_preview = t("jobs.error.not_open"), 400, False
        elif wants_preview and not form.cohort_ids:
            error, status, wants_preview = t("jobs.error.no_cohort"), 400, False
        if request.method == "POST" and error is None:
            try:
                bc = broadcast_job(session, settings, job, form.cohort_ids,
                                   actor=current_user.name, skill=form.skill,
                                   statuses=form.statuses,
                                   expected=request.form.get("fingerprint", ""))
            except RecipientsChanged:
                session.rollback()
                warning, status = t("jobs.error.changed"), 409
            except BroadcastError as exc:
                session.rollback()
                error, status = str(exc), 400
            else:
                flash(t("jobs.flash.sent", count=bc.recipient_count, code=job.code))
                return redirect(url_for("staff.job", job_id=job.id) + f"#send-{bc.id}")
        preview = _preview(session, job, form) if wants_preview and error is None else None
        if preview is not None and not preview["recipients"]:
            error = t("jobs.error.nobody")
        return page("staff/jobs_send.html", job=job, cohorts=cohorts, form=form,
                               preview=preview, error=error, warning=warning, state=state,
                               statuses=EMPLOYMENT_STATUSES,
                               members=_members(session, [c.id for c in cohorts])), status


def _preview(session: Session, job: JobOpening, form: SendForm) -> dict:
    settings = get_settings()
    recipients = target_recipients(session, form.cohort_ids, skill=form.skill or None,
                                   statuses=form.statuses or None, job=job)
    everyone = target_recipients(session, form.cohort_ids, skill=form.skill or None,
                                 statuses=form.statuses or None)
    reports = latest_reports(session, [g.id for g in recipients])
    names = {c.id: c.name for c in session.scalars(
        select(Cohort).where(Cohort.id.in_(form.cohort_ids)))}
    languages = sorted({g.language or settings.app.language for g in recipients}
                       or {settings.app.language},
                       key=lambda lang: (lang != settings.app.language, lang))
    return {
        "recipients": [{"graduate": g, "cohort": names.get(g.cohort_id, ""),
                        "report": reports.get(g.id)} for g in recipients],
        "already": len(everyone) - len(recipients),
        "fingerprint": recipients_fingerprint(recipients),
        "messages": [(lang, whatsapp_html(job_message(lang, job))) for lang in languages],
    }


def _members(session: Session, cohort_ids: list[int]) -> dict[int, int]:
    """Active graduates who have not opted out, per cohort (shown beside each cohort)."""
    if not cohort_ids:
        return {}
    return dict(session.execute(
        select(Graduate.cohort_id, func.count(Graduate.id))
        .where(Graduate.cohort_id.in_(cohort_ids), Graduate.active.is_(True),
               Graduate.opted_out.is_(False))
        .group_by(Graduate.cohort_id)).all())


# --- shortlist export -----------------------------------------------------------------------

@bp.get("/jobs/<int:job_id>/shortlist.<fmt>")
@login_required
def job_shortlist_export(job_id: int, fmt: str):
    """The shortlist as CSV or XLSX for the employer (audited)."""
    from bot.auditing import record
    from bot.exports import _write_csv, _write_xlsx  # the writers that neutralise formulas

    if fmt not in EXPORT_FORMATS:
        abort(404)
    with page_session() as session:
        job = job_or_404(session, job_id)
        rows = _shortlist(session, job, scoped_cohort_ids(session))
        header = [t(f"jobs.export.{key}") for key in
                  ("name", "phone", "institution", "cohort", "interested_at", "status",
                   "employer", "rating", "job_code", "job_title")]
        data = [[c.name, c.phone, c.institution, c.cohort, local_time(c.interested_at),
                 status_label(c.status), c.employer, c.rating, job.code, job.title]
                for c in rows]
        filename = f"{t('jobs.export.file')}-{job.code}-{_today():%Y%m%d}.{fmt}"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / filename
            writer = _write_csv if fmt == "csv" else _write_xlsx
            writer(path, t("jobs.export.sheet"), header, iter(data))
            content = path.read_bytes()
        job_id, code = job.id, job.code
    record(get_db(), current_user.name, "export", what="shortlist", format=fmt,
           file=filename, rows=len(data), job_id=job_id, code=code)
    return send_file(BytesIO(content), mimetype=EXPORT_FORMATS[fmt], as_attachment=True,
                     download_name=filename, max_age=0)
