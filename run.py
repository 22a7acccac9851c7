#!/usr/bin/env python3
"""Two commands for a fresh clone, needing only Python 3.11+:

    python3 run.py demo     # Kabar on SQLite with the simulator and sample data
    python3 run.py test     # the whole test suite

Both create ./.venv on first use and install Kabar into it with the pinned versions in
constraints.txt. Extra arguments go to ``kabar demo`` or ``pytest``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("KABAR_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str) -> None:
    """Create the virtual environment and install Kabar, again only when inputs changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 (run.py may be started by an older Python)
        sys.exit(f"Kabar needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / f".kabar-installed-{extras or 'base'}"
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    # The test install includes everything the demo needs.
    done = [stamp] + ([VENV / ".kabar-installed-test"] if not extras else [])
    if any(s.exists() and s.read_text() == digest for s in done):
        return
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    print(f"installing Kabar ({target}) into {VENV} …", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-c", str(ROOT / "constraints.txt"), "-e", target], cwd=ROOT, check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "demo":
        ensure_venv("")
        return run([str(BIN / "kabar"), "demo", *rest])
    ensure_venv("test")
    return run([str(PYTHON), "-m", "pytest", *rest])


def run(command: list[str]) -> int:
    """Become ``command`` where the system allows it, so that a signal meant for this process
    (a service manager's SIGTERM, ``kill``) reaches Kabar itself and leaves nothing behind."""
    if os.name != "posix":
        return subprocess.call(command, cwd=ROOT)
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execv(command[0], command)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
