"""Kabar: a WhatsApp follow-up bot for job-training graduates.

``create_app`` is the Flask application factory (production: ``gunicorn "bot:create_app()"``).
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from werkzeug.routing import IntegerConverter

from bot.config import TRANSPORT_NOT_CHOSEN, ConfigError, Settings, load_settings
from bot.db import Database

log = logging.getLogger("kabar")
MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in Kabar's routes: a non-negative id no larger than ``MAX_ID``."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_app(settings: Settings | None = None, db: Database | None = None, *,
               demo: bool = False) -> Flask:
    """Build the web app: Twilio webhooks, staff console, health check, simulator if enabled.

    Refuses (ConfigError) when no transport was chosen. ``demo``: the simulator answers
    without a sign-in, to loopback addresses only (``kabar demo``).
    """
    settings = settings or load_settings()
    if not settings.transport_chosen and not demo:
        raise ConfigError(f"{settings.source}: {TRANSPORT_NOT_CHOSEN}")
    from bot.privacy import install_log_masking

    install_log_masking()  # no phone numbers or query strings in any log line
    app = Flask(__name__)
    app.config["KABAR_DEMO"] = demo
    app.config["SECRET_KEY"] = settings.app.secret_key or _ephemeral_secret()
    app.extensions["kabar.settings"] = settings
    app.extensions["kabar.db"] = db or Database(
        settings.database.url, read_url=settings.database.read_url,
        max_lag_seconds=settings.database.replica_max_lag_seconds)
    # A request body over this is refused (413) before it is read: a roster upload is the
    # largest thing anyone sends, about 2 MB for 20,000 graduates.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    # Ids in URLs are 32-bit row ids: a larger number is no object (404), not a database error.
    app.url_map.converters["int"] = IdConverter

    from bot import cleaning, security, staff, webhook
    from bot.staff.auth import csrf

    security.init_app(app)
    cleaning.init_app(app)
    staff.init_app(app)
    # Twilio signs its requests instead of carrying a CSRF token.
    csrf.exempt(webhook.bp)
    app.register_blueprint(webhook.bp)
    if settings.transport.kind == "simulator":
        # The simulator skips signature checks, so it exists only with the simulator transport.
        from bot import simulator

        csrf.exempt(simulator.bp)
        app.register_blueprint(simulator.bp)

    @app.get("/healthz")
    def healthz():
        """The health report (``bot.health``): 200 "ok" or "degraded", 503 without a database."""
        from sqlalchemy.exc import SQLAlchemyError

        from bot.health import UNAVAILABLE, report

        try:
            return report(get_db(),
                          lease_seconds=get_settings().dispatch.claim_lease_seconds)
        except SQLAlchemyError as exc:
            log.error("/healthz: the database cannot be read: %s", exc)
            return {"status": UNAVAILABLE,
                    "reason": f"the database cannot be read ({type(exc).__name__})"}, 503
        except Exception as exc:  # a health check answers, whatever broke
            log.exception("/healthz: the health report failed")
            return {"status": UNAVAILABLE,
                    "reason": f"the health report failed ({type(exc).__name__})"}, 503

    return app


def get_settings() -> Settings:
    return current_app.extensions["kabar.settings"]


def get_db() -> Database:
    return current_app.extensions["kabar.db"]


def _ephemeral_secret() -> str:
    import secrets

    log.warning("app.secret_key is not set: using a random key valid until restart")
    return secrets.token_hex(32)
