"""A deployer's path: only a config file (as in config.example.toml) and the `kabar` commands,
pointed at Twilio (here the loopback fake, through ``twilio.api_base_url``)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

ROSTER = """lpks;paket;nama;no_wa;keterampilan
LPKS A'nur;Menjahit 3;Siti Aminah;0812-3456-7890;menjahit
LPKS A'nur;Menjahit 3;Dewi Lestari;+62 813 2222 3333;menjahit
LPKS Nisfisano;Bordir 1;Rina Wati;6285733334444;bordir
"""


@pytest.fixture
def kabar(tmp_path, settings, twilio_fake):
    config = tmp_path / "config.toml"
    config.write_text(f"""
[app]
secret_key = "deploy-secret"
public_url = "https://kabar.example.go.id"

[database]
url = {json.dumps(settings.database.url)}

[transport]
kind = "twilio"

[twilio]
account_sid = "{TEST_ACCOUNT_SID}"
auth_token = "{TEST_AUTH_TOKEN}"
whatsapp_from = "whatsapp:+14155238886"
api_base_url = "{twilio_fake.url}"

[twilio.templates]
checkin = "HX{'1' * 32}"
job_opening = "HX{'2' * 32}"

[scheduler]
quiet_hours = ""
""")
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        result = runner.invoke(main, ["--config", str(config), *args], input=input)
        assert result.exit_code == 0, result.output
        return result.output

    run.tmp = tmp_path
    return run


def test_roster_checkin_and_job_reach_twilio_with_only_the_config_file(kabar, twilio_fake):
    roster = kabar.tmp / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    assert "3 created, 0 updated, 0 unchanged, 0 rejected" in kabar("import-roster", str(roster))

    assert "Menjahit 3: 2 prompts queued" in kabar("checkin", "send", "--cohort", "menjahit 3")
    assert "sent 2 messages" in kabar("dispatch", "--once")
    prompts = twilio_fake.accepted
    assert {m["to"] for m in prompts} == {"whatsapp:+6281234567890", "whatsapp:+6281322223333"}
    # The approved template carries the prompt outside the 24-hour window.
    assert all(m["content_sid"] == "HX" + "1" * 32 for m in prompts)
    assert {m["content_variables"]["1"] for m in prompts} == {"Siti Aminah",
                                                                          "Dewi Lestari"}
    assert all(m["status_callback"] == "https://kabar.example.go.id/twilio/status"
               for m in prompts)

    out = kabar("broadcast", "job", "--title", "Operator jahit", "--employer", "PT Sepatu KITB",
                "--location", "Batang", "--skill", "menjahit", "--all", "--yes")
    assert "2 graduates will receive this job opening" in out
    code = out.split("replies: MINAT ")[1].split()[0]
    assert "sent 2 messages" in kabar("dispatch", "--once")
    # Outside the 24-hour window the job goes out as the approved template, code included.
    jobs = [m for m in twilio_fake.accepted if m["content_sid"] == "HX" + "2" * 32]
    assert len(jobs) == 2
    assert all(m["content_variables"]["1"] == "Operator jahit"
               and m["content_variables"]["5"] == code for m in jobs)
    assert "sent 0 messages" in kabar("dispatch", "--once")


def test_a_wrong_key_stops_every_command_with_its_name(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[twilio]\nauth_tokn = 'x'\n")
    result = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code != 0
    assert "unknown key twilio.auth_tokn" in result.output
