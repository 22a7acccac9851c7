"""Replies Kabar did not understand ("Balasan yang belum dipahami"): teach Kabar their meaning.

The replies the check-in could not place (``bot.learning``), grouped by question and phrase
across graduates, most frequent first, each with its counts, the latest example and a link to
that conversation. Staff and admins give a group a meaning in one click (a button per valid
meaning), and may have the open reports it would fill re-read at once; a second list shows the
taught meanings with a button to delete one. Viewers see the replies of their own institution's
graduates, read-only (their POST is a 403). Every change is in the audit log.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField
from wtforms.validators import Optional

from bot import get_db, get_settings
from bot.cleaning import is_number
from bot.learning import (
    MEANINGS,
    QUESTION_READING,
    count_entries,
    count_groups,
    forget,
    taught_entries,
    teach,
    unplaced_groups,
)
from bot.models import utcnow
from bot.staff import bp
from bot.staff.auth import can_write, scoped_cohort_ids
from bot.staff.i18n import t
from bot.staff.jobs import page
from bot.staff.reads import page_session

GROUPS_PER_PAGE = 50
ENTRIES_PER_PAGE = 50
MAX_PAGE = 10_000


class TeachForm(FlaskForm):
    """One group's meaning: the button pressed gives ``meaning``."""

    question = HiddenField()
    phrase = HiddenField()
    meaning = HiddenField()
    reread = BooleanField()
    page = IntegerField(validators=[Optional()])


class ForgetForm(FlaskForm):
    """The delete button of a taught meaning (only the CSRF token)."""


def meaning_label(meaning: str) -> str:
    """A meaning in words ("Mencari kerja"); a rating is its number."""
    text = t(f"learning.meaning.{meaning}")
    return meaning if text == f"learning.meaning.{meaning}" else text


def question_label(question: str) -> str:
    return t(f"learning.question.{question}")


def reading_label(reading: str) -> str:
    return t(f"learning.reading.{reading}")


def _page_arg(name: str) -> int:
    value = (request.args.get(name) or "1").strip()
    if not is_number(value) or len(value) > 6 or not 1 <= int(value) <= MAX_PAGE:
        abort(404)
    return int(value)


def _render(session, *, error: str | None = None, status: int = 200, group_page: int = 1,
            entry_page: int = 1):
    scope = scoped_cohort_ids(session)
    total = count_groups(session, scope)
    groups = unplaced_groups(session, scope, limit=GROUPS_PER_PAGE,
                             offset=(group_page - 1) * GROUPS_PER_PAGE)
    entries = entries_total = None
    if current_user.can_write:
        entries_total = count_entries(session)
        entries = taught_entries(session, limit=ENTRIES_PER_PAGE,
                                 offset=(entry_page - 1) * ENTRIES_PER_PAGE)
    return page("staff/learning.html", groups=groups, total=total, group_page=group_page,
                more_groups=group_page * GROUPS_PER_PAGE < total, entries=entries,
                entries_total=entries_total, entry_page=entry_page,
                more_entries=bool(entries_total) and entry_page * ENTRIES_PER_PAGE
                < entries_total, error=error, meaning_label=meaning_label,
                question_label=question_label, reading_label=reading_label), status


@bp.get("/belum-dipahami")
@login_required
def learning():
    """The unresolved groups (paged, ``?page=``) and, for staff, the taught meanings
    (``?taught=``)."""
    with page_session() as session:
        return _render(session, group_page=_page_arg("page"), entry_page=_page_arg("taught"))


@bp.post("/belum-dipahami/ajari")
@can_write
def learning_teach():
    """Give one group its meaning; with ``reread`` fill the open reports it leaves empty."""
    form = TeachForm()
    question = (form.question.data or "").strip()
    phrase = (form.phrase.data or "").strip()
    meaning = (form.meaning.data or "").strip()
    back = form.page.data if form.page.data and 1 <= form.page.data <= MAX_PAGE else 1
    with get_db().session() as session:
        error = None
        if not form.validate_on_submit():
            error = t("learning.error.form")
        elif question not in QUESTION_READING:
            error = t("learning.error.question", question=question[:40])
        elif meaning not in MEANINGS[QUESTION_READING[question]]:
            error = t("learning.error.meaning", meaning=meaning[:40],
                      question=question_label(question),
                      allowed=", ".join(meaning_label(m)
                                        for m in MEANINGS[QUESTION_READING[question]]))
        elif not phrase or len(phrase) > 200:
            error = t("learning.error.phrase")
        if error is not None:
            session.rollback()
            return _render(session, error=error, status=400, group_page=back)
        result = teach(session, get_settings(), question=question, phrase=phrase,
                       meaning=meaning, actor=current_user.name, now=utcnow(),
                       reread=bool(form.reread.data))
        flash(t("learning.flash.taught", phrase=result.phrase, meaning=meaning_label(meaning),
                reading=reading_label(result.reading), resolved=result.resolved))
        if result.old_meaning and result.old_meaning != meaning:
            flash(t("learning.flash.changed", old=meaning_label(result.old_meaning)))
        if form.reread.data:
            flash(t("learning.flash.reread", count=result.reports_changed))
    return redirect(url_for("staff.learning", page=back if back > 1 else None))


@bp.post("/belum-dipahami/arti/<int:entry_id>/hapus")
@can_write
def learning_forget(entry_id: int):
    """Delete a taught meaning (audited)."""
    form = ForgetForm()
    with get_db().session() as session:
        if not form.validate_on_submit():
            session.rollback()
            return _render(session, error=t("learning.error.form"), status=400)
        if not forget(session, entry_id=entry_id, actor=current_user.name):
            abort(404)
        flash(t("learning.flash.forgotten"))
    return redirect(url_for("staff.learning", _anchor="taught"))
