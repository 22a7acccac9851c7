"""The simulator only where meant: `kabar demo` on loopback, or an explicit
transport.kind = "simulator" with a staff sign-in; no web app without a chosen transport."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot import create_app
from bot.cli import main
from bot.config import ConfigError, load_settings
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import signed_in_client


@pytest.fixture
def roster(db):
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1", join_code="K7PQ2MXR")
        make_graduates(session, cohort, count=2)


def test_the_web_app_refuses_to_start_without_a_transport(tmp_path, database_url):
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(database_url)}\n", encoding="utf-8")
    settings = load_settings(config, environ={})
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    assert str(refused.value).startswith(f"{config}: transport.kind is not set")
    assert 'kind = "twilio"' in str(refused.value)


def test_kabar_serve_refuses_without_a_transport_and_says_what_to_set(tmp_path, database_url):
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(database_url)}\n", encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_TRANSPORT": None})
    result = runner.invoke(main, ["--config", str(config), "serve", "--port", "1"])
    assert result.exit_code == 1
    assert "transport.kind is not set" in result.output
    assert "[transport]" in result.output and "KABAR_TRANSPORT" in result.output


def test_kabar_transport_in_the_environment_counts_as_chosen(tmp_path):
    settings = load_settings(environ={"KABAR_TRANSPORT": "console"})
    assert settings.transport_chosen and settings.transport.kind == "console"


def test_an_explicit_simulator_needs_a_staff_sign_in(app, db, roster):
    anonymous = app.test_client()
    page = anonymous.get("/simulator/")
    assert page.status_code == 302 and "/staff/login" in page.headers["Location"]
    assert anonymous.get("/simulator/api/messages?phone=%2B6281200000001").status_code == 401
    answer = anonymous.post("/simulator/api/send", json={"phone": "+6281200000001",
                                                         "body": "GABUNG K7PQ2MXR"})
    assert answer.status_code == 401
    viewer = signed_in_client(app, db, "lihat", role="viewer", institution="LPKS A'nur")
    assert viewer.get("/simulator/").status_code == 403
    staff = signed_in_client(app, db, "rina", role="staff")
    shown = staff.get("/simulator/")
    assert shown.status_code == 200 and "Menjahit 1" in shown.get_data(as_text=True)


def test_the_simulator_does_not_show_join_codes(app, db, roster):
    staff = signed_in_client(app, db, "rina", role="staff")
    assert "K7PQ2MXR" not in staff.get("/simulator/").get_data(as_text=True)


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:5000", 200), ("localhost:5000", 200), ("[::1]:5000", 200),
    ("evil.example", 404), ("kabar.example.go.id:5000", 404), ("10.0.0.5", 404),
])
def test_the_demo_simulator_answers_only_to_loopback_host_names(settings, db, roster, host,
                                                                 status):
    app = create_app(settings, db, demo=True)
    response = app.test_client().get("/simulator/", headers={"Host": host})
    assert response.status_code == status


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_kabar_demo_listens_on_loopback_only(host, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--host", host, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "this computer only" in result.output
    assert not list(tmp_path.iterdir())  # refused before anything was created
