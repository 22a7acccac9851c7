"""nav.schedules page (being built)."""

from __future__ import annotations

from flask import render_template_string
from flask_login import login_required

from bot.staff import bp


@bp.get("/schedules")
@login_required
def schedules():
    return render_template_string('{% extends "staff/base.html" %}{% block content %}'
                                  '<h1>{{ t("nav.schedules") }}</h1>{% endblock %}')
