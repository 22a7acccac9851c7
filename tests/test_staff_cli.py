"""Staff users (add_staff) and the command line: staff add, import-roster, export."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from bot.cli import main
from bot.db import Database
from bot.models import (
    REPORT_COMPLETED,
    AuditLog,
    CheckInRound,
    Graduate,
    Institution,
    ProgressReport,
    StaffUser,
)
from bot.staffusers import StaffError, add_staff

# --- add_staff ----------------------------------------------------------------------------


def test_add_then_update_staff(db):
    with db.session() as session:
        session.add(Institution(name="LPKS A'nur"))
    with db.session() as session:
        user, created = add_staff(session, name="ani", role="admin", password="rahasia123",
                                  phone="0812-3456-7890")
        assert created
    with db.session() as session:
        user, created = add_staff(session, name="ani", role="viewer", password="baru-sekali",
                                  institution="lpks a'nur")
        assert not created
    with db.session() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.name == "ani"))
        assert user.role == "viewer"
        assert user.institution.name == "LPKS A'nur"
        assert user.phone == "+6281234567890"  # kept when not given again
        assert user.check_password("baru-sekali") and not user.check_password("rahasia123")
        entries = session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert [e.action for e in entries] == ["staff_add", "staff_update"]
        assert "rahasia123" not in json.dumps([e.detail for e in entries])


@pytest.mark.parametrize("kwargs, message", [
    ({"role": "boss"}, "admin, staff, viewer"),
    ({"password": "pendek"}, "at least 8"),
    ({"role": "viewer"}, "known: LPKS A'nur, LPKS Baja"),
    ({"role": "viewer", "institution": "LPKS X"}, "unknown institution 'LPKS X'"),
    ({"phone": "12345"}, "phone"),
    ({"name": "  "}, "needs a name"),
])
def test_add_staff_refuses(db, kwargs, message):
    with db.session() as session:
        session.add_all([Institution(name="LPKS Baja"), Institution(name="LPKS A'nur")])
    args = {"name": "ani", "role": "staff", "password": "rahasia123", **kwargs}
    with pytest.raises(StaffError, match=message), db.session() as session:
        add_staff(session, **args)
    with db.session() as session:
        assert session.scalars(select(StaffUser)).all() == []


def test_staff_phone_belongs_to_one_user(db):
    with db.session() as session:
        add_staff(session, name="ani", role="staff", password="rahasia123", phone="081234567890")
    with pytest.raises(StaffError, match="already belongs to staff user 'ani'"), \
            db.session() as session:
        add_staff(session, name="budi", role="staff", password="rahasia123",
                  phone="+62 812-3456-7890")


# --- command line -------------------------------------------------------------------------


@pytest.fixture
def migrated_url(settings) -> str:
    """The test database, already built by the Alembic migrations (see conftest)."""
    return settings.database.url


@pytest.fixture
def cli(tmp_path, migrated_url):
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(migrated_url)}\n", encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None})

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["--config", str(config), *args], input=input)

    database = Database(migrated_url)
    run.db = database
    yield run
    database.dispose()


def test_cli_staff_add_with_password_stdin(cli):
    result = cli("staff", "add", "ani", "--role", "admin", "--password-stdin",
                 input="rahasia123\n")
    assert result.exit_code == 0, result.output
    assert "added staff user 'ani' (admin)" in result.stdout
    result = cli("staff", "add", "ani", "--role", "staff", "--password-stdin",
                 input="lebih-rahasia\n")
    assert result.exit_code == 0, result.output
    assert "updated staff user 'ani' (staff)" in result.stdout
    with cli.db.session() as session:
        user = session.scalar(select(StaffUser))
        assert user.role == "staff" and user.check_password("lebih-rahasia")

    result = cli("staff", "add", "vina", "--role", "viewer", "--password-stdin",
                 input="rahasia123\n")
    assert result.exit_code == 1
    assert "institution" in result.stderr
    result = cli("staff", "add", "budi", "--role", "staff", "--password-stdin", input="123\n")
    assert result.exit_code == 1
    assert "at least 8" in result.stderr


def test_cli_import_roster_reports_summary_and_bad_lines(cli, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("nama;lpks;paket;no_wa\n"
                      "Siti;LPKS A'nur;Menjahit 3;0812-3456-7890\n"
                      "Budi;LPKS A'nur;Menjahit 3;12345\n"
                      ";LPKS A'nur;Menjahit 3;0812-3456-7891\n", encoding="utf-8")
    result = cli("import-roster", str(roster))
    assert result.exit_code == 0, result.output
    assert "roster.csv: 1 created, 0 updated, 0 unchanged, 2 rejected" in result.stdout
    assert "roster.csv: line 3: no_wa '12345'" in result.stderr
    assert "roster.csv: line 4: nama" in result.stderr
    result = cli("import-roster", str(roster))
    assert "roster.csv: 0 created, 0 updated, 1 unchanged, 2 rejected" in result.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("nama,lpks,paket\nSiti,A,B\n", encoding="utf-8")
    result = cli("import-roster", str(bad))
    assert result.exit_code == 1
    assert "bad.csv" in result.stderr and "no_wa" in result.stderr


def test_cli_export_progress_xlsx(cli, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("nama,lpks,paket,no_wa\nSiti,LPKS A'nur,Menjahit 3,081234567890\n",
                      encoding="utf-8")
    assert cli("import-roster", str(roster)).exit_code == 0
    with cli.db.session() as session:
        grad = session.scalar(select(Graduate))
        rnd = CheckInRound(cohort_id=grad.cohort_id,
                           scheduled_for=datetime(2024, 5, 1, 2, 0, tzinfo=UTC))
        session.add(rnd)
        session.flush()
        session.add(ProgressReport(round_id=rnd.id, graduate_id=grad.id, status=REPORT_COMPLETED,
                                   employment_status="self_employed", employer="jualan online",
                                   skill_rating=5, raw_answers={"status": ["2"]}))
    out = tmp_path / "progress.xlsx"
    result = cli("export", "progress", "--codes", "--format", "xlsx", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 1 progress rows" in result.stdout
    workbook = load_workbook(out, read_only=True)
    header, row = (list(r) for r in workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    values = dict(zip(header, row, strict=False))
    assert values["graduate"] == "Siti" and values["phone"] == "+6281234567890"
    assert values["employment_status"] == "self_employed"
    assert values["uses_training_skill"] is None
    with cli.db.session() as session:
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["import_roster", "export"]
