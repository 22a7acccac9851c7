"""A graduate's personal data on request (UU PDP 27/2022), for admins only.

``GET /staff/graduates/<id>/data.json`` is a copy of everything Kabar keeps about them (audited
as ``graduate.data_copy``); ``POST /staff/graduates/<id>/erase`` erases them after a ticked
confirmation (``bot.privacy.erase_graduate``, audited as ``graduate.erase``).
"""

from __future__ import annotations

import json
from io import BytesIO

from flask import abort, flash, redirect, request, send_file, url_for
from flask_login import current_user

from bot import get_db
from bot.auditing import record
from bot.privacy import PrivacyError, erase_graduate, graduate_data
from bot.staff import bp
from bot.staff.auth import graduate_or_404, require_role
from bot.staff.i18n import t
from bot.staff.reads import page_session


@bp.get("/graduates/<int:graduate_id>/data.json")
@require_role("admin")
def graduate_data_copy(graduate_id: int):
    """Everything Kabar keeps about one graduate, as a JSON download."""
    with page_session() as session:
        data = graduate_data(session, graduate_or_404(session, graduate_id))
    name = f"kabar-data-{graduate_id}.json"
    record(get_db(), current_user.name, "graduate.data_copy", graduate_id=graduate_id,
           file=name)
    content = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    return send_file(BytesIO(content), mimetype="application/json", as_attachment=True,
                     download_name=name, max_age=0)


@bp.post("/graduates/<int:graduate_id>/erase")
@require_role("admin")
def graduate_erase(graduate_id: int):
    """Erase one graduate's personal data; the confirmation box must be ticked."""
    if request.form.get("confirm") != "yes":
        flash(t("personal_data.confirm_missing"))
        return redirect(url_for("staff.graduate", graduate_id=graduate_id))
    try:
        with get_db().session() as session:
            graduate = graduate_or_404(session, graduate_id)
            counts = erase_graduate(session, graduate, current_user.name)
    except PrivacyError:
        abort(409)
    flash(t("personal_data.erased", messages=counts["messages"], reports=counts["reports"]))
    return redirect(url_for("staff.roster"))
