"""The staff console under ``/staff``: sign-in, dashboards, timelines, reply log, jobs, exports.

Every view checks the role (``admin`` everything, ``staff`` everything but users, ``viewer``
read-only and only their institution's cohorts); an object outside the user's scope is a 404.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates",
               static_folder="static", static_url_path="/static")


def init_app(app) -> None:
    """Register the console: login manager, CSRF protection, the blueprint and its views."""
    from bot.staff import auth, formats, reads, views  # noqa: F401  (views register on bp)

    auth.init_app(app)
    formats.register(app)
    app.register_blueprint(bp)
