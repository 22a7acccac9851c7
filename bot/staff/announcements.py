"""nav.announcements page (being built)."""

from __future__ import annotations

from flask import render_template_string
from flask_login import login_required

from bot.staff import bp


@bp.get("/announcements")
@login_required
def announcements():
    return render_template_string('{% extends "staff/base.html" %}{% block content %}'
                                  '<h1>{{ t("nav.announcements") }}</h1>{% endblock %}')
