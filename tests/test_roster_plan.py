"""What a roster import will change, worked out first: the plan, --dry-run and the summary."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.models import AuditLog, Cohort, Graduate, Institution
from bot.roster_plan import apply_plan, plan_roster
from tests.factories import make_cohort, make_graduates

HEADER = "lpks;paket;nama;no_wa;keterampilan;bahasa\n"


@pytest.fixture
def anur(db):
    """LPKS A'nur, Menjahit 3: Siti, Budi, Dewi (+6281200000001..3)."""
    with db.session() as s:
        cohort = make_cohort(s, name="Menjahit 3")
        siti, budi, dewi = make_graduates(s, cohort, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi Santoso", "Dewi Lestari"


def write(tmp_path, *rows: str, name: str = "roster.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def snapshot(db):
    with db.session() as s:
        return (sorted((g.phone, g.name, g.cohort_id, g.skill, g.language)
                       for g in s.scalars(select(Graduate))),
                s.scalar(select(func.count()).select_from(Cohort)),
                s.scalar(select(func.count()).select_from(Institution)),
                s.scalar(select(func.count()).select_from(AuditLog)))


def test_the_plan_sorts_each_row_and_writes_nothing(db, anur, tmp_path):
    path = write(tmp_path,
                 "LPKS A'nur;Menjahit 3;Siti Aminah;+6281200000001;menjahit;",  # same
                 "lpks a'nur;MENJAHIT 3;Budi S.;+6281200000002;menjahit;",  # renamed
                 "LPKS A'nur;Menjahit 4;Dewi Lestari;+6281200000003;menjahit;",  # moved
                 "LPKS A'nur;Menjahit 3;Ani;+6281200000004;;en",  # new
                 "LPKS Baru;Las 1;Joko;+6281200000005;las;")  # new LPKS and cohort
    before = snapshot(db)
    with db.session() as s:
        plan = plan_roster(s, path)
    assert snapshot(db) == before
    assert plan.new_institutions == ["LPKS Baru"]
    assert plan.new_cohorts == ["LPKS A'nur/Menjahit 4", "LPKS Baru/Las 1"]
    assert [(c.old_name, c.name) for c in plan.renamed] == [("Budi Santoso", "Budi S.")]
    assert [(c.old_cohort, c.cohort) for c in plan.moved] == [
        ("LPKS A'nur/Menjahit 3", "LPKS A'nur/Menjahit 4")]
    assert [c.phone for c in plan.created] == ["+6281200000004", "+6281200000005"]
    assert plan.unchanged == 1 and plan.absent == 0 and plan.other == []


def test_the_digest_changes_only_when_the_outcome_would(db, anur, tmp_path):
    path = write(tmp_path, "LPKS A'nur;Menjahit 3;Siti Aminah Putri;+6281200000001;menjahit;")
    with db.session() as s:
        first = plan_roster(s, path).digest
    with db.session() as s:
        assert plan_roster(s, path).digest == first
        s.scalar(select(Graduate).where(Graduate.phone == "+6281200000003")).name = "Dewi"
    with db.session() as s:  # a graduate the file does not touch: the same import
        assert plan_roster(s, path).digest == first
        s.scalar(select(Graduate).where(Graduate.phone == "+6281200000001")).name = "Siti A."
    with db.session() as s:  # the renamed graduate's old name changed: another import
        assert plan_roster(s, path).digest != first


def test_applying_the_plan_audits_renames_and_moves(db, anur, tmp_path):
    path = write(tmp_path, "LPKS A'nur;Menjahit 4;Budi S.;+6281200000002;menjahit;")
    with db.session() as s:
        report = apply_plan(s, plan_roster(s, path), actor="ani")
    assert (report.created, report.updated, report.cohorts_created) == (0, 1, 1)
    with db.session() as s:
        entries = {e.action: e.detail for e in s.scalars(select(AuditLog))}
        budi = s.scalar(select(Graduate).where(Graduate.phone == "+6281200000002"))
        assert budi.name == "Budi S." and budi.cohort.name == "Menjahit 4"
    assert entries["graduate.rename"]["changes"] == {"name": ["Budi Santoso", "Budi S."]}
    assert entries["graduate.move"]["changes"] == {
        "cohort": ["LPKS A'nur/Menjahit 3", "LPKS A'nur/Menjahit 4"]}
    assert entries["graduate.move"]["line"] == 2


@pytest.fixture
def kabar(settings, tmp_path):
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None})
    return lambda *args: runner.invoke(main, ["--config", str(config), *args])


def test_cli_dry_run_prints_the_plan_and_changes_nothing(db, anur, tmp_path, kabar):
    path = write(tmp_path,
                 "LPKS A'nur;Menjahit 3;Siti Aminah Putri;0812-0000-0001;menjahit;",
                 "LPKS A'nur;Menjahit 4;Dewi Lestari;+6281200000003;menjahit;",
                 "LPKS Baru;Las 1;Joko;+6281200000005;las;",
                 "LPKS Baru;Las 1;Rudi;12345;las;")
    before = snapshot(db)
    result = kabar("import-roster", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(db) == before
    out = result.stdout
    assert "new institutions (1): LPKS Baru" in out
    assert "new cohorts (2): LPKS A'nur/Menjahit 4, LPKS Baru/Las 1" in out
    assert "line 2: +6281200000001 Siti Aminah -> Siti Aminah Putri" in out
    assert ("line 3: +6281200000003 Dewi Lestari: LPKS A'nur/Menjahit 3 -> "
            "LPKS A'nur/Menjahit 4") in out
    assert "not in the file: 1 active graduate of these cohorts; they stay active" in out
    assert ("roster.csv (dry run, nothing changed): 1 to create, 1 to rename, 1 to move, "
            "0 other changes, 0 unchanged, 1 rejected") in out
    assert "line 5: no_wa '12345'" in result.stderr

    result = kabar("import-roster", str(path))
    assert result.exit_code == 0, result.output
    assert "Siti Aminah -> Siti Aminah Putri" in result.stdout
    assert "roster.csv: 1 created, 2 updated, 0 unchanged, 1 rejected" in result.stdout
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action.in_(("graduate.rename", "graduate.move")))) == 2
