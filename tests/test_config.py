"""Settings: the example file, defaults, environment overrides and refusals that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings, parse_quiet_hours

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_example_config_documents_exactly_the_defaults():
    from_file = load_settings(EXAMPLE, environ={})
    defaults = load_settings(environ={})
    assert from_file.app == defaults.app
    assert from_file.scheduler == defaults.scheduler
    assert from_file.dispatch == defaults.dispatch
    assert from_file.database == defaults.database
    assert from_file.transport.kind == "simulator"


def test_every_settings_key_appears_in_the_example():
    text = EXAMPLE.read_text()
    for section in ("app", "database", "transport", "twilio", "scheduler", "dispatch",
                    "joining"):
        assert f"[{section}]" in text
        for key in getattr(Settings(), section).__dataclass_fields__:
            if key != "templates":
                assert f"\n{key} = " in text, f"{section}.{key} missing from the example"


def test_built_in_defaults_are_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.database.url.startswith("sqlite:///")
    assert s.transport.kind == "simulator"
    assert s.app.timezone == "Asia/Jakarta" and s.app.language == "id"
    assert s.quiet_window == (21 * 60, 7 * 60)


def write(tmp_path, body: str) -> Path:
    path = tmp_path / "kabar.toml"
    path.write_text(body)
    return path


def test_unknown_key_is_refused_with_its_name(tmp_path):
    path = write(tmp_path, "[scheduler]\nquiet_hour = '22:00-06:00'\n")
    with pytest.raises(ConfigError, match=r"kabar.toml: unknown key scheduler.quiet_hour"):
        load_settings(path, environ={})


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[twillio\]"):
        load_settings(write(tmp_path, "[twillio]\naccount_sid='x'\n"), environ={})


@pytest.mark.parametrize("body, key", [
    ("[transport]\nkind = 'sms'\n", "transport.kind"),
    ("[app]\ntimezone = 'Asia/Pekalongan'\n", "app.timezone"),
    ("[scheduler]\nquiet_hours = '9pm-7am'\n", "scheduler.quiet_hours"),
    ("[scheduler]\ndefault_checkin = 'every month'\n", "scheduler.default_checkin"),
    ("[dispatch]\nmax_attempts = 'five'\n", "dispatch.max_attempts"),
    ("[dispatch]\nclaim_lease_seconds = 0\n", "dispatch.claim_lease_seconds"),
    ("[dispatch]\nconcurrency = 0\n", "dispatch.concurrency"),
    ("[dispatch]\nconcurrency = 257\n", "dispatch.concurrency"),
    ("[dispatch]\nconcurrency = 'many'\n", "dispatch.concurrency"),
    ("[twilio]\nvalidate_signatures = 'maybe'\n", "twilio.validate_signatures"),
    ("[twilio.templates]\ncheckin = 'abc'\n", "twilio.templates.checkin"),
    ("[twilio.templates]\nbirthday = 'HX1'\n", "twilio.templates.birthday"),
    ("[app]\nlanguage = 'jv'\n", "app.language"),
])
def test_bad_values_name_the_key(tmp_path, body, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, body), environ={})


def test_twilio_transport_requires_credentials_and_names_them(tmp_path):
    path = write(tmp_path, "[transport]\nkind = 'twilio'\n")
    with pytest.raises(ConfigError, match="twilio.account_sid, twilio.auth_token"):
        load_settings(path, environ={})


def test_secrets_come_from_the_environment(tmp_path):
    path = write(tmp_path, "[transport]\nkind = 'twilio'\n[twilio]\n"
                           "whatsapp_from = 'whatsapp:+14155238886'\n")
    s = load_settings(path, environ={"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "tok",
                                     "KABAR_SECRET_KEY": "k",
                                     "KABAR_PUBLIC_URL": "https://kabar.example.go.id",
                                     "KABAR_DATABASE_URL": "sqlite:////tmp/x.db"})
    assert (s.twilio.account_sid, s.twilio.auth_token) == ("AC123", "tok")
    assert s.app.secret_key == "k" and s.database.url == "sqlite:////tmp/x.db"


def test_kabar_config_variable_chooses_the_file(tmp_path):
    path = write(tmp_path, "[dispatch]\nrate_per_second = 80\n")
    assert load_settings(environ={"KABAR_CONFIG": str(path)}).dispatch.rate_per_second == 80.0


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: configuration file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_settings_are_immutable():
    s = load_settings(environ={})
    with pytest.raises(AttributeError):
        s.app.timezone = "UTC"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.twilio.templates["checkin"] = "HX1"  # type: ignore[index]


@pytest.mark.parametrize("text, window", [
    ("21:00-07:00", (1260, 420)), ("", None), (" 22:30 - 05:15 ", (1350, 315)),
])
def test_quiet_hours_parse(text, window):
    assert parse_quiet_hours(text) == window


def test_twilio_transport_refuses_a_public_url_twilio_cannot_reach(tmp_path):
    path = write(tmp_path, "[transport]\nkind = 'twilio'\n[app]\nsecret_key = 'k'\n"
                           "[twilio]\naccount_sid = 'AC1'\nauth_token = 't'\n"
                           "whatsapp_from = 'whatsapp:+14155238886'\n")
    with pytest.raises(ConfigError, match="app.public_url .* Twilio cannot reach"):
        load_settings(path, environ={})
    good = load_settings(path, environ={"KABAR_PUBLIC_URL": "https://kabar.example.go.id"})
    assert good.app.public_url == "https://kabar.example.go.id"
