"""Roster upload in two steps: a preview of what will change, then the confirmed import.

The upload is read and compared with the database (``bot.roster_plan.plan_roster``) without
changing anything; the page lists the new institutions and cohorts, the new graduates, the
renames, the moves to another cohort and the other changes, and says that graduates missing
from the file stay as they are. The file is kept in ``roster_uploads`` under a random token
with the digest of that plan. Confirming works the plan out again from the kept file and
applies it only when it is still exactly the one shown; otherwise (someone changed the roster
in between) nothing is imported and the new preview is shown, to be confirmed again. A
confirmed upload cannot be imported a second time. Only the user who uploaded may confirm, and
an upload is kept for ``KEEP_UPLOADS``.

A file of more than one chunk (``bot.roster_plan.COMMIT_EVERY`` rows) is applied in a
background thread of the web worker; the browser goes to the upload's page, which shows the
rows done of all (``roster_progress.js`` polls ``…/progress``, stored with each chunk in the
upload's row, so any worker answers it) and then the import's summary. A worker that dies
mid-import leaves the upload neither finished nor progressing: its page says it was
interrupted and offers to import the rest, which works the plan out again from the kept file
(the rows already written are then unchanged) and shows it to be confirmed as usual.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import delete, select, update
from werkzeug.utils import secure_filename

from bot import get_db, get_settings
from bot.models import RosterUpload, utcnow
from bot.roster import ImportReport, RosterError
from bot.roster_plan import COMMIT_EVERY, RosterPlan, apply_plan, plan_roster
from bot.rosterfile import ReadLimits
from bot.staff import bp
from bot.staff.auth import can_write
from bot.staff.i18n import t
from bot.staff.roster import UploadForm

log = logging.getLogger(__name__)

KEEP_UPLOADS = timedelta(days=1)
# An import applying in another process that stored no progress for this long has stopped
# (a chunk commits in well under a second; a worker killed mid-import stores nothing more).
STALLED_AFTER = timedelta(minutes=2)
_RUNNING: set[int] = set()  # uploads this process is applying now (by id)
_RUNNING_LOCK = threading.Lock()
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what secrets.token_urlsafe makes
SHOWN = 200  # rows of each kind listed on the preview page


class ConfirmForm(FlaskForm):
    """Only the CSRF token: the token in the address names the upload."""


def _plan_file(session, file_name: str, content: bytes) -> RosterPlan:
    """The plan for ``content``, read from a temporary file named like the upload."""
    suffix = Path(file_name).suffix.lower()
    name = secure_filename(file_name) or f"roster{suffix}"
    with tempfile.TemporaryDirectory(prefix="kabar-roster-") as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        plan = plan_roster(session, path, limits=ReadLimits.from_settings(get_settings()))
    plan.file = file_name or plan.file
    return plan


def _preview(plan: RosterPlan, upload: RosterUpload, status: int = 200, changed: bool = False):
    return render_template("staff/roster_preview.html", plan=plan, token=upload.token,
                           file=upload.file_name, form=ConfirmForm(), shown=SHOWN,
                           changed=changed), status


@bp.post("/roster/upload")
@can_write
def roster_upload():
    """Read an uploaded CSV/XLSX roster and show what importing it would change."""
    form = UploadForm()
    if not form.validate_on_submit():
        flash(t("roster.upload_missing"))
        return redirect(url_for("staff.roster"))
    upload = form.roster.data
    original = upload.filename or ""
    content = upload.read()
    try:
        with get_db().read_session() as session:
            plan = _plan_file(session, original, content)
    except RosterError as exc:
        return render_template("staff/roster_report.html", report=None,
                               error=str(exc), file=original), 422
    with get_db().session() as session:
        session.execute(delete(RosterUpload).where(
            RosterUpload.created_at < utcnow() - KEEP_UPLOADS))
        kept = RosterUpload(token=secrets.token_urlsafe(32), file_name=original[:255],
                            content=content, plan_digest=plan.digest,
                            staff_user_id=current_user.id)
        session.add(kept)
        session.flush()
        return _preview(plan, kept)


@bp.post("/roster/import/<token>")
@can_write
def roster_import_confirm(token: str):
    """Import the previewed upload, if it still plans exactly what the preview showed."""
    if not TOKEN.fullmatch(token):  # no upload has it (a NUL would also upset PostgreSQL)
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    # The file is read and compared in a read session (no writer lock on SQLite); only the
    # claim and the changes write, in short transactions.
    with get_db().read_session() as session:
        kept = _kept(session, token)
        if kept is None:
            flash(t("rosterimport.gone"))
            return redirect(url_for("staff.roster"))
        if kept.applied_at is not None:
            flash(t("rosterimport.already", file=kept.file_name))
            return redirect(url_for("staff.roster"))
        try:
            plan = _plan_file(session, kept.file_name, kept.content)
        except RosterError as exc:  # cannot happen for a previewed file, unless the code changed
            return render_template("staff/roster_report.html", report=None,
                                   error=str(exc), file=kept.file_name), 422
        upload_id, file_name, digest = kept.id, kept.file_name, kept.plan_digest
    with get_db().session() as session:
        if plan.digest != digest:
            kept = session.get(RosterUpload, upload_id)
            kept.plan_digest = plan.digest  # the new preview is what a confirmation applies
            return _preview(plan, kept, status=409, changed=True)
        claimed = session.execute(
            update(RosterUpload).where(RosterUpload.id == upload_id,
                                       RosterUpload.applied_at.is_(None))
            .values(applied_at=utcnow(), worker=_worker(), rows_total=len(plan.rows),
                    rows_done=0, progress_at=utcnow(), finished_at=None, outcome=None)
        ).rowcount
        if claimed != 1:  # a second click raced this one
            flash(t("rosterimport.already", file=file_name))
            return redirect(url_for("staff.roster"))
    # The claim is committed: from here the upload's page shows how far the import is.
    db, actor = get_db(), current_user.name
    with _RUNNING_LOCK:
        _RUNNING.add(upload_id)
    if len(plan.rows) <= COMMIT_EVERY:  # one chunk: done before the page would load
        _apply(db, upload_id, plan, actor)
    else:
        # Not a daemon: a worker shut down gracefully finishes the import first.
        threading.Thread(target=_apply, args=(db, upload_id, plan, actor),
                         name=f"roster-import-{upload_id}").start()
    return redirect(url_for("staff.roster_import_status", token=token), code=303)


@bp.get("/roster/import/<token>")
@can_write
def roster_import_status(token: str):
    """An applied upload: its progress while it is written, then the import's summary."""
    if not TOKEN.fullmatch(token):
        abort(404)
    with get_db().read_session() as session:
        kept = _kept(session, token)
        if kept is None or kept.applied_at is None:
            return redirect(url_for("staff.roster"))
        state = _state(kept)
        outcome = kept.outcome or {}
        if state == "done":
            return render_template("staff/roster_report.html", report=_report(kept),
                                   error=None, file=kept.file_name, done=outcome)
        return render_template("staff/roster_progress.html", upload=kept, state=state,
                               error=outcome.get("error"), form=ConfirmForm(),
                               progress_url=url_for("staff.roster_import_progress",
                                                    token=token))


@bp.get("/roster/import/<token>/progress")
@can_write
def roster_import_progress(token: str):
    """How far an applied upload is, for the page's script: state, rows done, rows in all."""
    if not TOKEN.fullmatch(token):
        abort(404)
    with get_db().read_session() as session:
        kept = _kept(session, token)
        if kept is None or kept.applied_at is None:
            abort(404)
        response = jsonify({"state": _state(kept), "done": kept.rows_done or 0,
                            "total": kept.rows_total or 0})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/roster/import/<token>/resume")
@can_write
def roster_import_resume(token: str):
    """After an interrupted or failed import: the preview of what is left to import."""
    if not TOKEN.fullmatch(token):
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with get_db().read_session() as session:
        kept = _kept(session, token)
        if kept is None or _state(kept) not in ("interrupted", "failed"):
            return redirect(url_for("staff.roster_import_status", token=token[:64]))
        try:
            plan = _plan_file(session, kept.file_name, kept.content)
        except RosterError as exc:
            return render_template("staff/roster_report.html", report=None,
                                   error=str(exc), file=kept.file_name), 422
        upload_id = kept.id
    with get_db().session() as session:
        # Only a stopped import is reopened (a second click, or a worker that came back to
        # life, finds it changed and is sent to its page).
        reopened = session.execute(
            update(RosterUpload).where(RosterUpload.id == upload_id,
                                       RosterUpload.applied_at == kept.applied_at)
            .values(applied_at=None, plan_digest=plan.digest, worker=None, rows_total=None,
                    rows_done=None, progress_at=None, finished_at=None, outcome=None)
        ).rowcount
        if reopened != 1:
            return redirect(url_for("staff.roster_import_status", token=token))
        return _preview(plan, session.get(RosterUpload, upload_id))


def _kept(session, token: str) -> RosterUpload | None:
    """The current user's upload under ``token``, unless it expired."""
    kept = session.scalar(select(RosterUpload).where(
        RosterUpload.token == token[:64], RosterUpload.staff_user_id == current_user.id))
    if kept is None or kept.created_at < utcnow() - KEEP_UPLOADS:
        return None
    return kept


def _worker() -> str:
    """This process, as stored on the upload it applies: ``host:pid``."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def _state(kept: RosterUpload) -> str:
    """'applying', 'done', 'failed' (stopped by an error) or 'interrupted' (its process
    died or stopped storing progress)."""
    if kept.finished_at is not None:
        return "failed" if (kept.outcome or {}).get("error") else "done"
    host, _, pid = (kept.worker or "").rpartition(":")
    if host == socket.gethostname()[:100] and pid.isdigit():
        if int(pid) == os.getpid():
            with _RUNNING_LOCK:
                return "applying" if kept.id in _RUNNING else "interrupted"
        if not _alive(int(pid)):
            return "interrupted"
    if kept.progress_at is None or kept.progress_at < utcnow() - STALLED_AFTER:
        return "interrupted"
    return "applying"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _apply(db, upload_id: int, plan: RosterPlan, actor: str) -> None:
    """Write ``plan``, storing progress with each chunk and the outcome at the end."""

    def stored(session, done: int) -> None:
        session.execute(update(RosterUpload).where(RosterUpload.id == upload_id)
                        .values(rows_done=done, progress_at=utcnow()))

    try:
        with db.session() as session:
            report = apply_plan(session, plan, actor=actor, chunked=True, on_chunk=stored)
            session.execute(update(RosterUpload).where(RosterUpload.id == upload_id).values(
                rows_done=len(plan.rows), progress_at=utcnow(), finished_at=utcnow(),
                outcome=_outcome(report, plan)))
    except Exception as exc:
        if not isinstance(exc, RosterError):
            log.exception("roster import of upload %s stopped", upload_id)
        # A RosterError says what happened in words; anything else is in the log.
        error = str(exc) if isinstance(exc, RosterError) else \
            f"{type(exc).__name__} (see the server's log)"
        try:
            with db.session() as session:
                session.execute(update(RosterUpload).where(RosterUpload.id == upload_id)
                                .values(finished_at=utcnow(), outcome={"error": error}))
        except Exception:
            log.exception("roster import of upload %s: its failure could not be stored",
                          upload_id)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(upload_id)


def _outcome(report: ImportReport, plan: RosterPlan) -> dict[str, Any]:
    return {"created": report.created, "updated": report.updated,
            "unchanged": report.unchanged, "renamed": len(plan.renamed),
            "moved": len(plan.moved), "institutions_created": report.institutions_created,
            "cohorts_created": report.cohorts_created,
            "rejected_total": report.rejected_total,
            "rejected": [[p.line, p.reason] for p in report.rejected]}


def _report(kept: RosterUpload) -> ImportReport:
    """The summary of a finished upload, as stored."""
    from bot.roster import ImportProblem
    from bot.rosterfile import ProblemList

    outcome = kept.outcome or {}
    rejected = ProblemList(ImportProblem(line, reason)
                           for line, reason in outcome.get("rejected", []))
    rejected.total = outcome.get("rejected_total", len(rejected))
    return ImportReport(file=kept.file_name, created=outcome.get("created", 0),
                        updated=outcome.get("updated", 0),
                        unchanged=outcome.get("unchanged", 0), rejected=rejected,
                        institutions_created=outcome.get("institutions_created", 0),
                        cohorts_created=outcome.get("cohorts_created", 0))
