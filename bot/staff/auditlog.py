"""The audit log: who did what, when; filtered by actor and action, newest first.

Admins and staff only. Paging is by keyset on the entry id (``?before_id=``, 50 a page). The
detail of an entry is shown as labelled values (nested filters and changes included); it can hold
text a person typed (a name at a failed sign-in), so it is only ever rendered escaped.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from sqlalchemy import func, select

from bot import get_db, get_settings
from bot.models import AuditLog
from bot.staff import bp
from bot.staff.auth import require_role
from bot.staff.i18n import t
from bot.staff.replylog import int_arg

PAGE_SIZE = 50
MAX_VALUE = 300  # characters of one shown value


def _text_or(key: str, fallback: str) -> str:
    text = t(key)
    return fallback if text == key else text


def action_label(action: str) -> str:
    """'graduate.edit' -> its text ``auditlog.action_graduate_edit``, else the code itself."""
    return _text_or("auditlog.action_" + action.replace(".", "_"), action)


def readable(value: Any) -> str:
    """A detail value as one line: lists joined, mappings as ``key: value``, None as –."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return t("auditlog.yes") if value else t("auditlog.no")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value) or "–"
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


def _change(value: Any) -> str:
    """``[old, new]`` as ``old → new``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{readable(value[0])} → {readable(value[1])}"
    return readable(value)


def _detail(detail: Any) -> list[tuple[str, str]]:
    if not isinstance(detail, dict):
        return [("", readable(detail))] if detail else []
    shown = []
    for key, value in detail.items():
        if key == "changes" and isinstance(value, dict):
            shown.extend((_text_or(f"auditlog.field_{k}", k), _change(v))
                         for k, v in value.items())
        else:
            shown.append((_text_or(f"auditlog.field_{key}", key), readable(value)))
    return shown


@bp.get("/audit")
@require_role("admin", "staff")
def audit():
    """Audit entries newest first, filtered by actor (exact name) and action."""
    actor = " ".join((request.args.get("actor") or "").split())[:200]
    action = (request.args.get("action") or "").strip()[:64]
    before_id = int_arg("before_id")
    zone = get_settings().tz
    with get_db().read_session() as session:
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
