"""The audit log: who did what, when; filtered by actor and action, newest first.

Admins and staff only. Paging is by keyset on the entry id (``?before_id=``, 50 a page). The
detail of an entry is shown as labelled values (nested filters and changes included); it can hold
text a person typed (a name at a failed sign-in), so it is only ever rendered escaped.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from flask import render_template, request, url_for
from sqlalchemy import func, select

from bot import get_settings
from bot.models import AuditLog
from bot.staff import bp
from bot.staff.auth import require_role
from bot.staff.formats import date_text, datetime_text, direction_label, status_label
from bot.staff.i18n import t
from bot.staff.reads import page_session
from bot.staff.replylog import int_arg

PAGE_SIZE = 50
MAX_VALUE = 300  # characters of one shown value


def _text_or(key: str, fallback: str) -> str:
    text = t(key)
    return fallback if text == key else text


def action_label(action: str) -> str:
    """'graduate.edit' -> its text ``auditlog.action_graduate_edit``, else the code itself."""
    return _text_or("auditlog.action_" + action.replace(".", "_"), action)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_EMPLOYMENT = ("employed", "self_employed", "seeking", "studying")


def field_label(key: str) -> str:
    """A detail's name in the reader's language (``auditlog.field_<key>``), else the key."""
    return _text_or(f"auditlog.field_{key}", key)


def _coded(key: str | None, text: str) -> str:
    """A stored code as people say it: a role, a status, a reason, a date."""
    if key == "role":
        return _text_or(f"users.role_{text}", text)
    if key in ("employment_status", "statuses") and text in _EMPLOYMENT:
        return _text_or(f"jobs.status.{text}", text)
    if key == "status":
        return status_label(text)
    if key == "direction":
        return direction_label(text)
    if key in ("reason", "command"):
        return _text_or(f"auditlog.{key}_{text.replace(' ', '_')}", text)
    if _ISO_DATE.match(text):
        return date_text(date.fromisoformat(text))
    if _ISO_TIME.match(text):
        try:
            return datetime_text(datetime.fromisoformat(text))
        except ValueError:
            return text
    return text


def readable(value: Any, key: str | None = None) -> str:
    """A detail value as one line: lists joined, mappings as ``name: value``, None as –,
    codes and dates as the rest of the console shows them."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return t("auditlog.yes") if value else t("auditlog.no")
    if isinstance(value, dict):
        if set(value) == {"old", "new"}:
            return _change([value["old"], value["new"]], key)
        return "; ".join(f"{field_label(k)}: {readable(v, k)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v, key) for v in value) or "–"
    text = _coded(key, str(value))
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


def _change(value: Any, key: str | None = None) -> str:
    """``[old, new]`` (or ``{"old": …, "new": …}``) as ``old → new``."""
    if isinstance(value, dict) and set(value) == {"old", "new"}:
        value = [value["old"], value["new"]]
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{readable(value[0], key)} → {readable(value[1], key)}"
    return readable(value, key)


def _detail(detail: Any) -> list[tuple[str, str]]:
    if not isinstance(detail, dict):
        return [("", readable(detail))] if detail else []
    shown = []
    for key, value in detail.items():
        if key == "changes" and isinstance(value, dict):
            shown.extend((field_label(k), _change(v, k)) for k, v in value.items())
        else:
            shown.append((field_label(key), readable(value, key)))
    return shown


@bp.get("/audit")
@require_role("admin", "staff")
def audit():
    """Audit entries newest first, filtered by actor (exact name) and action."""
    actor = " ".join((request.args.get("actor") or "").split())[:200]
    action = (request.args.get("action") or "").strip()[:64]
    before_id = int_arg("before_id")
    zone = get_settings().tz
    with page_session() as session:
        stmt = select(AuditLog)
        if actor:
            stmt = stmt.where(func.lower(AuditLog.actor) == actor.lower())
        if action:
            stmt = stmt.where(AuditLog.action == action)
        if before_id is not None:
            stmt = stmt.where(AuditLog.id < before_id)
        found = list(session.scalars(stmt.order_by(AuditLog.id.desc()).limit(PAGE_SIZE + 1)))
        actions = list(session.scalars(select(AuditLog.action).distinct()
                                       .order_by(AuditLog.action)))
        entries = [{"id": e.id, "at": e.created_at.astimezone(zone), "actor": e.actor,
                    "action": e.action,
                    "action_label": action_label(e.action),
                    "detail": _detail(e.detail)} for e in found[:PAGE_SIZE]]
    args = {k: v for k, v in {"actor": actor, "action": action}.items() if v}
    return render_template(
        "staff/audit.html", entries=entries, actor=actor, action=action,
        actions=[(a, action_label(a)) for a in actions],
        older_url=url_for("staff.audit", **args, before_id=entries[-1]["id"])
        if len(found) > PAGE_SIZE else None,
        newest_url=url_for("staff.audit", **args) if before_id is not None else None)
