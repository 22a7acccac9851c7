"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import sqlite3

from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect

from bot.cli import main
from bot.db import Database
from bot.migrate import alembic_config, head_revision, is_current
from bot.models import Base


def test_migrations_match_the_models(database_url):
    # Raises if autogenerate would find any difference between the database and the models.
    command.check(alembic_config(database_url))


def test_every_model_table_exists_after_upgrade(db):
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert is_current(db.engine)


def test_db_upgrade_command_creates_a_new_sqlite_database(tmp_path):
    config = tmp_path / "kabar.toml"
    url = f"sqlite:///{tmp_path / 'new.db'}"
    config.write_text(f'[database]\nurl = "{url}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "is at revision head" in result.output
    database = Database(url)
    try:
        assert is_current(database.engine)
        assert head_revision() is not None
    finally:
        database.dispose()


def test_commands_refuse_a_database_that_was_never_upgraded(tmp_path):
    sqlite3.connect(tmp_path / "empty.db").close()
    config = tmp_path / "kabar.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "empty.db"}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "export", "messages",
                                       "--output", str(tmp_path / "m.csv")])
    assert result.exit_code != 0
    assert "run `kabar db upgrade` first" in result.output


def test_commands_name_a_missing_database_file_and_do_not_create_it(tmp_path):
    config = tmp_path / "kabar.toml"
    missing = tmp_path / "typo.db"
    config.write_text(f'[database]\nurl = "sqlite:///{missing}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "db", "summaries", "--check"])
    assert result.exit_code == 1
    assert f"there is no database at {missing}" in result.output
    assert "kabar-demo/kabar-demo.db" in result.output  # where the demo keeps its data
    assert not missing.exists()
