"""The shipped service definitions start real Kabar commands.

Every ``ExecStart=`` of ``deploy/systemd/*.service`` and every line of the ``Procfile`` names
either ``kabar`` with a command and options the CLI has (resolved through click, as the shell
would run them), or gunicorn with ``deploy/gunicorn.conf.py`` and Kabar's app factory, which
gunicorn loads for real (``--check-config``). Where ``systemd-analyze`` exists the units are
also verified by systemd, with the install paths pointed at this checkout's virtualenv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bot.cli import main as kabar_cli

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
PROCFILE = ROOT / "Procfile"
ENV_EXAMPLE = ROOT / "deploy" / "kabar.env.example"
VENV_BIN = Path(sys.executable).parent
INSTALLED_BIN = "/opt/kabar/venv/bin/"


def unit_entries(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values, in order (a unit file may repeat a key)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def procfile_commands() -> dict[str, str]:
    commands = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def check_kabar_command(args: list[str], where: str) -> str:
    """Resolve ``kabar <args>`` through the click CLI (unknown commands and options fail)."""
    command: click.Command = kabar_cli
    names = ["kabar"]
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest and not rest[0].startswith("-"), f"{where}: 'kabar' needs a command"
        name = rest.pop(0)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"{where}: 'kabar {' '.join(names[1:] + [name])}' is no " \
                                  f"command of the CLI"
        command, names = found, names + [name]
    try:
        command.make_context(" ".join(names), rest)  # parses, does not run
    except click.UsageError as exc:
        pytest.fail(f"{where}: {' '.join(names + rest)}: {exc.format_message()}")
    return " ".join(names[1:])


def check_gunicorn_command(args: list[str], where: str) -> None:
    assert "--config" in args, f"{where}: gunicorn without --config"
    config = Path(args[args.index("--config") + 1]).name
    assert (ROOT / "deploy" / config).is_file(), f"{where}: no deploy/{config}"
    assert args[-1] == "bot:create_app()", f"{where}: gunicorn serves {args[-1]!r}"


def test_every_unit_starts_a_kabar_command_as_the_kabar_user():
    started = {}
    for unit in UNITS:
        entries = unit_entries(unit)
        (exec_start,) = entries["Service.ExecStart"]
        argv = shlex.split(exec_start)
        assert argv[0].startswith(INSTALLED_BIN), f"{unit.name}: {argv[0]}"
        program = Path(argv[0]).name
        if program == "kabar":
            started[unit.name] = check_kabar_command(argv[1:], unit.name)
        else:
            assert program == "gunicorn", f"{unit.name}: runs {program}"
            check_gunicorn_command(argv[1:], unit.name)
            started[unit.name] = "web"
        assert entries["Service.User"] == ["kabar"], unit.name
        assert entries["Service.EnvironmentFile"] == ["/etc/kabar/kabar.env"], unit.name
        assert entries["Install.WantedBy"] == ["multi-user.target"], unit.name
    assert started == {"kabar-dispatch@.service": "dispatch",
                       "kabar-scheduler.service": "scheduler",
                       "kabar-web.service": "web"}


def test_the_procfile_runs_the_same_processes():
    commands = procfile_commands()
    assert set(commands) == {"web", "scheduler", "dispatch"}
    for name, command in commands.items():
        argv = shlex.split(command)
        if argv[0] == "kabar":
            check_kabar_command(argv[1:], f"Procfile {name}")
        else:
            assert argv[0] == "gunicorn", f"Procfile {name}: {argv[0]}"
            check_gunicorn_command(argv[1:], f"Procfile {name}")
    assert shlex.split(commands["scheduler"])[1:] == ["scheduler", "--no-dispatch"]


def test_the_environment_example_holds_every_variable_the_units_read():
    names = {line.partition("=")[0] for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"KABAR_CONFIG", "KABAR_DATABASE_URL", "KABAR_SECRET_KEY", "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN", "KABAR_WEB_BIND", "KABAR_WEB_WORKERS"} <= names


def test_gunicorn_loads_kabar_with_the_shipped_settings(tmp_path):
    env = {**os.environ, "KABAR_CONFIG": "", "KABAR_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
           "KABAR_SECRET_KEY": "x" * 32, "KABAR_TRANSPORT": "simulator",
           "KABAR_WEB_WORKERS": "3", "KABAR_WEB_BIND": "127.0.0.1:0"}
    result = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "--check-config", "--print-config", "bot:create_app()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = {key.strip(): value.strip() for key, _, value in
               (line.partition("=") for line in result.stdout.splitlines())}
    assert printed["workers"] == "3"
    assert printed["worker_class"] == "sync"
    assert printed["timeout"] == "300"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path):
    """``systemd-analyze verify`` on copies whose paths point at this checkout."""
    env_file = tmp_path / "kabar.env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    for unit in UNITS:
        text = (unit.read_text().replace(INSTALLED_BIN, f"{VENV_BIN}/")
                .replace("/etc/kabar/kabar.env", str(env_file))
                .replace("/var/lib/kabar", str(tmp_path)))
        (tmp_path / unit.name).write_text(text)
    names = [u.name.replace("@.service", "@1.service") for u in UNITS]
    result = subprocess.run(["systemd-analyze", "verify", *names], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "kabar" in line]
    assert result.returncode == 0 and not complaints, "\n".join(complaints) or result.stderr
