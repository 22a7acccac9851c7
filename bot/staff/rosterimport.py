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
"""

from __future__ import annotations

import re
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import delete, select, update
from werkzeug.utils import secure_filename

from bot import get_db, get_settings
from bot.models import RosterUpload, utcnow
from bot.roster import RosterError
from bot.roster_plan import RosterPlan, apply_plan, plan_roster
from bot.rosterfile import ReadLimits
from bot.staff import bp
from bot.staff.auth import can_write
from bot.staff.i18n import t
from bot.staff.roster import UploadForm

KEEP_UPLOADS = timedelta(days=1)
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
        kept = session.scalar(select(RosterUpload).where(
            RosterUpload.token == token[:64], RosterUpload.staff_user_id == current_user.id))
        if kept is None or kept.created_at < utcnow() - KEEP_UPLOADS:
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
            .values(applied_at=utcnow())).rowcount
        if claimed != 1:  # a second click raced this one
            flash(t("rosterimport.already", file=file_name))
            return redirect(url_for("staff.roster"))
        # The claim commits with the first chunk; a file of thousands of rows is written in
        # short transactions that never hold up the webhook.
        report = apply_plan(session, plan, actor=current_user.name, chunked=True)
    return render_template("staff/roster_report.html", report=report, error=None,
                           file=file_name or report.file, plan=plan)
