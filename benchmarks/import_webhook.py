"""A large roster import on SQLite: how long it takes, and how long the webhook waits meanwhile.

    .venv/bin/python benchmarks/import_webhook.py [--rows 100000] [--workers 2] [--xlsx]

First ``kabar import-roster`` imports a CSV of ``--rows`` graduates into a fresh migrated
SQLite database with nothing else running: its wall time (process start to exit) beside the
5 s target, its CPU time and the importer's own split (read, compare, write). Then the same
file into another fresh database while gunicorn serves ``bot:create_app()`` and this script
posts signed inbound messages (Twilio's form, ``RequestValidator``) one after the other to
``/twilio/inbound`` and times each answer: the webhook's answer times during the import
(median, p99, max) beside the 1 s target, and the import's time under that traffic. Each
target with PASS or FAIL; every 200 answer is checked to be stored once. ``--xlsx`` then
imports the same rows from an XLSX workbook (no webhook), reported on its own: openpyxl's
reading is most of that time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "import-benchmark-token-0123456789"
TARGET_SECONDS = 1.0  # the longest a webhook may wait
IMPORT_TARGET_SECONDS = 5.0  # for 100,000 rows
SPLIT = re.compile(r"read in ([\d.]+) s, compared in ([\d.]+) s, written in ([\d.]+) s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--xlsx", action="store_true",
                        help="also time the same rows imported from an XLSX workbook")
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="kabar-import-bench-") as folder:
        work = Path(folder)
        db_path = work / "kabar.db"
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        config = work / "kabar.toml"
        config.write_text(f'''[app]
secret_key = "benchmark"
public_url = "{public}"

[database]
url = "sqlite:///{db_path}"

[transport]
kind = "simulator"

[twilio]
account_sid = "AC{"0" * 32}"
auth_token = "{AUTH_TOKEN}"
whatsapp_from = "whatsapp:+14155238886"

[roster]
max_rows = {max(args.rows, 50_000)}
max_unzipped_mb = 500
''', encoding="utf-8")
        env = {**os.environ, "KABAR_CONFIG": str(config)}
        subprocess.run([str(bin_dir / "kabar"), "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        roster = work / "roster.csv"
        with roster.open("w", encoding="utf-8") as fh:
            fh.write("lpks;paket;nama;no_wa\n")
            for i in range(args.rows):
                fh.write(f"LPKS {i % 10};Paket {i % 500};Lulusan {i};0813{i:08d}\n")
        # First the import alone (the 5 s target), into a database of its own.
        alone_seconds, alone_cpu, alone_split = _timed_import(roster, args.rows, bin_dir)
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b",
             f"127.0.0.1:{port}", "--log-level", "warning", "bot:create_app()"],
            env=env, cwd=ROOT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(public + "/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("gunicorn did not come up") from None
                    time.sleep(0.2)
            validator = RequestValidator(AUTH_TOKEN)
            url = public + "/twilio/inbound"
            cpu_before = _children_cpu()
            started = time.monotonic()
            importer = subprocess.Popen([str(bin_dir / "kabar"), "import-roster", str(roster)],
                                        env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
            waits: list[float] = []
            sent = 0
            while importer.poll() is None:
                form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": "whatsapp:+6285799990001",
                        "To": "whatsapp:+14155238886", "Body": "halo", "NumMedia": "0"}
                request = urllib.request.Request(
                    url, data=urllib.parse.urlencode(form).encode(), method="POST",
                    headers={"X-Twilio-Signature": validator.compute_signature(url, form),
                             "Content-Type": "application/x-www-form-urlencoded"})
                t0 = time.monotonic()
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert answer.status == 200
                waits.append(time.monotonic() - t0)
                sent += 1
            import_seconds = time.monotonic() - started
            import_cpu = _children_cpu() - cpu_before
            output, errors = importer.communicate()
            if importer.returncode != 0:
                raise RuntimeError(f"import failed: {output} {errors}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        stored = sqlite3.connect(db_path).execute(
            "SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]
        graduates = sqlite3.connect(db_path).execute(
            "SELECT count(*) FROM graduates").fetchone()[0]
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))] if waits else 0.0
    target = IMPORT_TARGET_SECONDS * args.rows / 100_000
    fast = alone_seconds < target
    webhook_ok = bool(waits) and waits[-1] <= TARGET_SECONDS
    print(f"CSV import of {args.rows} rows: {alone_seconds:.1f} s (target: under {target:.1f} s) "
          f"{'PASS' if fast else 'FAIL'}; CPU {alone_cpu:.1f} s; {alone_split}")
    print(f"the same beside the webhook's traffic: {import_seconds:.1f} s; CPU "
          f"{import_cpu:.1f} s; {_split(errors)}; {graduates} graduates stored")
    print(f"webhook during the import: {len(waits)} requests, median "
          f"{statistics.median(waits) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
          f"{waits[-1] * 1000:.0f} ms (target: never more than {TARGET_SECONDS * 1000:.0f} ms) "
          f"{'PASS' if webhook_ok else 'FAIL'}")
    print(f"stored inbound messages: {stored} of {sent} answered 200")
    if args.xlsx:
        _xlsx(args.rows, bin_dir)
    ok = fast and webhook_ok and stored == sent and graduates == args.rows
    return 0 if ok else 2


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _split(stderr: str) -> str:
    found = SPLIT.search(stderr)
    if not found:
        return "split not printed"
    read, compared, written = (float(v) for v in found.groups())
    return f"read {read:.1f} s, compare {compared:.1f} s, write {written:.1f} s"


def _timed_import(roster: Path, rows: int, bin_dir: Path) -> tuple[float, float, str]:
    """``kabar import-roster`` of ``roster`` into a fresh database, nothing else running:
    wall seconds, CPU seconds, the importer's split."""
    with tempfile.TemporaryDirectory(prefix="kabar-import-alone-") as folder:
        work = Path(folder)
        config = work / "kabar.toml"
        config.write_text(f'''[database]
url = "sqlite:///{work / 'kabar.db'}"

[roster]
max_rows = {max(rows, 50_000)}
max_unzipped_mb = 500
''', encoding="utf-8")
        env = {**os.environ, "KABAR_CONFIG": str(config)}
        subprocess.run([str(bin_dir / "kabar"), "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        cpu_before = _children_cpu()
        started = time.monotonic()
        done = subprocess.run([str(bin_dir / "kabar"), "import-roster", str(roster)], env=env,
                              capture_output=True, text=True)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"import of {roster.name} failed: {done.stdout} {done.stderr}")
        return seconds, _children_cpu() - cpu_before, _split(done.stderr)


def _xlsx(rows: int, bin_dir: Path) -> None:
    """The same rows from an XLSX workbook, into a fresh database (no webhook)."""
    from openpyxl import Workbook

    with tempfile.TemporaryDirectory(prefix="kabar-import-xlsx-") as folder:
        book = Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(["lpks", "paket", "nama", "no_wa"])
        for i in range(rows):
            sheet.append([f"LPKS {i % 10}", f"Paket {i % 500}", f"Lulusan {i}", f"0813{i:08d}"])
        roster = Path(folder) / "roster.xlsx"
        book.save(roster)
        seconds, cpu, split = _timed_import(roster, rows, bin_dir)
        print(f"XLSX import of {rows} rows (no webhook, reported apart): {seconds:.1f} s; "
              f"CPU {cpu:.1f} s; {split}")


if __name__ == "__main__":
    sys.exit(main())
