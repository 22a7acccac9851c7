"""Shared fixtures: settings, a fresh real database per test, the Flask app and its client.

The schema is built by the Alembic migrations, as ``kabar db upgrade`` builds it. Each test gets
a copy of it in SQLite, or, when ``KABAR_TEST_DATABASE_URL`` is set (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), the PostgreSQL schema migrated once per
run with every table emptied before each test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from flask import request
from sqlalchemy import text

from bot import create_app
from bot.config import Settings, load_settings
from bot.db import Database
from bot.inbox import handle_waiting
from bot.migrate import upgrade
from bot.models import Base

PG_URL = os.environ.get("KABAR_TEST_DATABASE_URL", "")
TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TEST_ACCOUNT_SID = "AC" + "0" * 32
# An approved template per business-initiated kind, as a deployment configures them: outside a
# graduate's 24-hour window these kinds go out only as templates (bot.transports.request_for).
TEST_TEMPLATES = {"checkin": "HX" + "c" * 32, "reminder": "HX" + "e" * 32,
                  "job_opening": "HX" + "b" * 32, "announcement": "HX" + "a" * 32}


def _reset_postgres(url: str) -> None:
    """Drop everything Kabar and its job store created, then migrate from nothing."""
    db = Database(url)
    Base.metadata.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version, apscheduler_jobs CASCADE"))
    db.dispose()
    upgrade(url)


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> str:
    """The schema, built once per run by the Alembic migrations (as `kabar db upgrade` does)."""
    if PG_URL:
        _reset_postgres(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("schema") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(tmp_path, _migrated_template) -> str:
    """A migrated, empty database for one test."""
    if PG_URL:
        db = Database(PG_URL)
        with db.engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
        db.dispose()
        return PG_URL
    path = tmp_path / "kabar-test.db"
    shutil.copyfile(_migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(database_url) -> Settings:
    """Simulator transport, signatures on, quiet hours off (tests choose their own clock),
    a template for every business-initiated kind (``TEST_TEMPLATES``)."""
    return load_settings(environ={}).with_overrides(
        app={"secret_key": "test-secret", "public_url": "http://kabar.test"},
        database={"url": database_url},
        transport={"kind": "simulator"},
        twilio={"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN,
                "whatsapp_from": "whatsapp:+14155238886", "templates": TEST_TEMPLATES},
        scheduler={"quiet_hours": ""},
        dispatch={"rate_per_second": 1000.0, "poll_interval_seconds": 0.05},
    )


@pytest.fixture
def db(settings) -> Iterator[Database]:
    database = Database(settings.database.url)
    yield database
    database.dispose()


@pytest.fixture
def app(settings, db):
    """The web app. Inbound messages it records are handled right after each webhook request,
    as the dispatcher's inbox pass would a moment later, so tests can read the outcome at
    once; ``queued_app`` leaves them waiting for the worker."""
    app = create_app(settings, db)
    app.config["TESTING"] = True

    @app.after_request
    def _handle_recorded_messages(response):
        if request.path == "/twilio/inbound" and response.status_code == 200:
            handle_waiting(db, settings)
        return response

    return app


@pytest.fixture
def queued_app(settings, db):
    """The web app exactly as deployed: the webhook only records; nothing handles the inbox."""
    app = create_app(settings, db)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def twilio_settings(settings, twilio_fake) -> Settings:  # noqa: F811 (fixture below)
    """The test settings with the Twilio transport pointed at the loopback fake of Twilio."""
    return settings.with_overrides(transport={"kind": "twilio"},
                                   twilio={"api_base_url": twilio_fake.url})


from tests.twilio_fake import twilio_fake  # noqa: E402, F401
