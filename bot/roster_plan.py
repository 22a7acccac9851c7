"""What a roster import will change, worked out before anything changes, then applied as shown.

``plan_roster`` reads the file with ``bot.roster.parse_roster`` and compares every row with the
database without writing: which institutions and cohorts are new, which graduates are created,
renamed, moved to another cohort or otherwise changed (skill, language), which stay as they are.
``apply_plan`` writes exactly that plan; every rename and move is audited on its own (old ->
new) besides the import's summary entry. The plan's ``digest`` covers every change it makes and
the database values it replaces, so a plan worked out again later has the same digest only
when it would do exactly the same (the console's confirmation relies on that).

An import never deactivates anyone: graduates missing from the file stay as they are (staff
deactivate them on their page). The plan counts them (``absent``) so the preview can say so.
"""

from __future__ import annotations

import hashlib
import json
import operator
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.joincodes import random_code
from bot.models import (
    AuditLog,
    Cohort,
    ErasedNumber,
    Graduate,
    Institution,
    audit,
    utcnow,
)
from bot.roster import ImportProblem, ImportReport, RosterError, RosterRow, parse_roster

LISTED = 20  # rows of each kind the command line prints


@dataclass(slots=True)  # not frozen: cheaper to build by the 100,000
class GraduateChange:
    """One roster row that creates or changes a graduate."""

    line: int
    phone: str
    name: str  # as in the file
    cohort: str  # "Institution/Cohort", as it will be
    graduate_id: int | None = None  # None: a new graduate
    old_name: str | None = None
    old_cohort: str | None = None
    changes: tuple[str, ...] = ()  # of name, cohort, skill, language

    def describe(self) -> str:
        """'line 4: +6281234567890 Siti Aminah -> Siti A. Putri, LPKS/Menjahit 1 -> …'."""
        parts = []
        if "name" in self.changes:
            parts.append(f"{self.old_name} -> {self.name}")
        if "cohort" in self.changes:
            parts.append(f"{self.name}: {self.old_cohort} -> {self.cohort}")
        if not parts:
            detail = ", ".join(c for c in self.changes if c not in ("name", "cohort"))
            parts.append(f"{self.name} ({self.cohort})" + (f": {detail}" if detail else ""))
        return f"line {self.line}: {self.phone} " + "; ".join(parts)


@dataclass
class RosterPlan:
    """Everything an import of one file would do, in file order."""

    file: str
    rows: list[RosterRow]
    rejected: list[ImportProblem]
    new_institutions: list[str] = field(default_factory=list)
    new_cohorts: list[str] = field(default_factory=list)  # "Institution/Cohort"
    created: list[GraduateChange] = field(default_factory=list)
    changed: list[GraduateChange] = field(default_factory=list)
    unchanged: int = 0
    absent: int = 0  # active graduates of the file's existing cohorts that the file leaves out
    digest: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # how long reading, comparing took
    # how each row is applied: (cohort key, wanted values, graduate id; None: a new one;
    # _UNCHANGED: nothing to write)
    _steps: list[tuple[tuple[str, str], dict[str, Any], int | None]] = field(
        default_factory=list, repr=False)
    _cohort_skills: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)
    _cohort_names: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict,
                                                                  repr=False)

    @property
    def rejected_total(self) -> int:
        """Rejected rows in all (``rejected`` may list only the first of them)."""
        return getattr(self.rejected, "total", len(self.rejected))

    @property
    def renamed(self) -> list[GraduateChange]:
        return [c for c in self.changed if "name" in c.changes]

    @property
    def moved(self) -> list[GraduateChange]:
        return [c for c in self.changed if "cohort" in c.changes]

    @property
    def other(self) -> list[GraduateChange]:
        """Changes that are neither a rename nor a move (skill, language)."""
        return [c for c in self.changed if not {"name", "cohort"} & set(c.changes)]

    @property
    def empty(self) -> bool:
        return not (self.created or self.changed or self.new_institutions or self.new_cohorts)

    def counts(self) -> str:
        return (f"{len(self.created)} to create, {len(self.renamed)} to rename, "
                f"{len(self.moved)} to move, {len(self.other)} other changes, "
                f"{self.unchanged} unchanged, {len(self.rejected)} rejected")

    def summary_lines(self, listed: int = LISTED) -> list[str]:
        """What will change, for the command line (each kind lists ``listed`` rows at most)."""
        lines = []
        if self.new_institutions:
            lines.append(f"new institutions ({len(self.new_institutions)}): "
                         + ", ".join(self.new_institutions))
        if self.new_cohorts:
            lines.append(f"new cohorts ({len(self.new_cohorts)}): " + ", ".join(self.new_cohorts))
        for title, items in (("new graduates", self.created), ("renamed", self.renamed),
                             ("moved to another cohort", self.moved),
                             ("other changes", self.other)):
            if not items:
                continue
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {c.describe()}" for c in items[:listed])
            if len(items) > listed:
                lines.append(f"  … and {len(items) - listed} more")
        if self.absent:
            noun = "graduate" if self.absent == 1 else "graduates"
            lines.append(f"not in the file: {self.absent} active {noun} of these cohorts; they "
                         "stay active (an import never deactivates anyone; deactivate them on "
                         "their page in the console)")
        return lines


def plan_roster(session: Session, path: Path, *, limits=None,
                allow_erased: bool = False) -> RosterPlan:
    """Read ``path`` (within ``limits``, ``bot.rosterfile.ReadLimits``) and work out what
    importing it would change; writes nothing. Numbers of graduates erased on request are
    refused (a problem on their line) unless ``allow_erased``."""
    from bot.privacy import refuse_erased

    path = Path(path)
    started = time.monotonic()
    rows, problems = parse_roster(path, limits)
    read = time.monotonic()
    if not allow_erased and session.scalar(select(ErasedNumber.phone_hash).limit(1)):
        rows = refuse_erased(session, rows, problems)
    plan = RosterPlan(file=path.name, rows=rows, rejected=problems)
    institutions = {i.name.casefold(): i for i in session.scalars(select(Institution))}
    cohorts: dict[tuple[str, str], Cohort] = {
        (c.institution.name.casefold(), c.name.casefold()): c
        for c in session.scalars(select(Cohort).join(Institution))}
    by_id = {c.id: c for c in cohorts.values()}
    existing = _graduates_by_phone(session, [r.phone for r in rows])
    new_institutions: dict[str, str] = {}
    cohort_skill_fills: list[tuple[int, str]] = []
    cohort_dates: list[list[Any]] = []  # training dates a row gives an existing cohort
    changes_digest: list[Any] = []
    labels: dict[tuple[str, str], str] = {}
    old_labels = {c.id: f"{c.institution.name}/{c.name}" for c in by_id.values()}
    for row in rows:
        key = (row.institution.casefold(), row.cohort.casefold())
        cohort = cohorts.get(key)
        if key not in plan._cohort_names:
            inst = institutions.get(key[0])
            if inst is None and key[0] not in new_institutions:
                new_institutions[key[0]] = row.institution
            inst_name = inst.name if inst is not None else new_institutions[key[0]]
            plan._cohort_names[key] = (inst_name, cohort.name if cohort else row.cohort)
            plan._cohort_skills[key] = cohort.skill if cohort else row.skill
            labels[key] = "/".join(plan._cohort_names[key])
            if cohort is None:
                plan.new_cohorts.append(labels[key])
        if plan._cohort_skills[key] is None and row.skill:
            plan._cohort_skills[key] = row.skill
            if cohort is not None:
                cohort_skill_fills.append((cohort.id, row.skill))
        if cohort is not None and (row.training_start or row.training_end):
            for name in ("training_start", "training_end"):
                given = getattr(row, name)
                if given is not None and getattr(cohort, name) != given:
                    cohort_dates.append([cohort.id, name, getattr(cohort, name), given])
        label = labels[key]
        wanted: dict[str, Any] = {"name": row.name,
                                  "skill": row.skill or plan._cohort_skills[key]}
        if row.language:
            wanted["language"] = row.language
        grad = existing.get(row.phone)
        if grad is None:
            plan.created.append(GraduateChange(row.line, row.phone, row.name, label))
            plan._steps.append((key, wanted, None))
            changes_digest.append(("create", row.phone, label, wanted))
            continue
        changed = [k for k, v in wanted.items() if getattr(grad, k) != v]
        if cohort is None or grad.cohort_id != cohort.id:
            changed.insert(1 if "name" in changed else 0, "cohort")
        if changed:
            old_label = old_labels.get(grad.cohort_id, "-")
            plan.changed.append(GraduateChange(
                row.line, row.phone, row.name, label, graduate_id=grad.id, old_name=grad.name,
                old_cohort=old_label, changes=tuple(changed)))
            changes_digest.append(("change", grad.id, row.phone, label, old_label,
                                   [[k, getattr(grad, k), wanted.get(k)]
                                    for k in changed if k != "cohort"]))
            plan._steps.append((key, wanted, grad.id))
        else:
            plan.unchanged += 1
            changes_digest.append(("same", grad.id))
            plan._steps.append((key, wanted, _UNCHANGED))
    plan.new_institutions = list(new_institutions.values())
    plan.absent = _absent(session, [c.id for k, c in cohorts.items()
                                    if k in plan._cohort_names], {r.phone for r in rows})
    plan.digest = hashlib.sha256(json.dumps(
        [plan.file, plan.new_institutions, plan.new_cohorts, cohort_skill_fills, cohort_dates,
         changes_digest, [[p.line, p.reason] for p in problems]],
        default=str, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    plan.seconds = {"read": read - started, "compare": time.monotonic() - read}
    return plan


_UNCHANGED = 0  # the graduate id of a step that changes nothing (ids start at 1)
LOOKUP_CHUNK = 2_000  # numbers per query: within SQLite's and PostgreSQL's parameter limits


def _graduates_by_phone(session: Session, phones: list[str]) -> dict[str, Any]:
    """The graduates holding ``phones``: the columns an import compares, as rows."""
    table = Graduate.__table__
    columns = (table.c.id, table.c.phone, table.c.name, table.c.cohort_id, table.c.skill,
               table.c.language)
    found: dict[str, Any] = {}
    if len(phones) > LOOKUP_CHUNK and \
            session.scalar(select(func.count()).select_from(table)) <= 2 * len(phones):
        # A file about as large as the roster: one pass over the table costs less than
        # sending every number.
        wanted = set(phones)
        found.update((row.phone, row) for row in session.execute(select(*columns))
                     if row.phone in wanted)
        return found
    for start in range(0, len(phones), LOOKUP_CHUNK):
        chunk = phones[start:start + LOOKUP_CHUNK]
        found.update((row.phone, row) for row in session.execute(
            select(*columns).where(table.c.phone.in_(chunk))))
    return found


def _absent(session: Session, cohort_ids: list[int], phones: set[str]) -> int:
    if not cohort_ids:
        return 0
    listed = session.scalars(select(Graduate.phone).where(
        Graduate.cohort_id.in_(cohort_ids), Graduate.active.is_(True)))
    return sum(1 for phone in listed if phone not in phones)


# Rows per transaction of a chunked import: on SQLite a chunk of 2,000 new graduates holds
# the writer lock for about 10 ms.
COMMIT_EVERY = 2_000


class ImportConflict(RosterError):
    """A number the plan saw as new was added by someone else before this import wrote it."""


def apply_plan(session: Session, plan: RosterPlan, *, actor: str,
               progress: Callable[[int, int], Any] | None = None,
               chunked: bool = False,
               on_chunk: Callable[[Session, int], Any] | None = None) -> ImportReport:
    """Write ``plan`` (from ``plan_roster`` in this session); the caller commits the last part.

    Institutions and cohorts come first, then the graduates in chunks of ``COMMIT_EVERY``
    rows written as sets (one ``INSERT`` and one ``UPDATE`` executed for many rows, with the
    audit entries of the chunk's renames and moves). With ``chunked`` each part is committed
    here, so the database's writer lock is free between them and a webhook or a reply waits
    for one chunk at most, never for the whole file (on SQLite the import also leaves the
    lock free a while after each chunk: see ``_Pacer``). An import stopped halfway keeps the
    chunks written; importing the same file again adds the rest (rows are matched by number).

    ``on_chunk(session, rows_done)`` runs inside each chunk's transaction (a stored progress
    then counts exactly the rows committed); ``progress(rows_done, rows_total)`` after it.
    The summary audit entry is written last, with the final part.
    """
    report = ImportReport(file=plan.file, rejected=plan.rejected, created=len(plan.created),
                          updated=len(plan.changed), unchanged=plan.unchanged,
                          institutions_created=len(plan.new_institutions),
                          cohorts_created=len(plan.new_cohorts))
    cohort_ids = _write_cohorts(session, plan)
    if chunked:
        session.commit()
    table = Graduate.__table__
    changes = {c.line: c for c in plan.changed}
    total = len(plan._steps)
    now = utcnow()
    inserter = _Inserter(session.connection().dialect, now)
    pacer = _Pacer(chunked and session.connection().dialect.name == "sqlite")
    for start in range(0, total, COMMIT_EVERY):
        end = min(start + COMMIT_EVERY, total)
        inserts: list[Any] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        audits: list[dict[str, Any]] = []
        for index in range(start, end):
            key, wanted, graduate_id = plan._steps[index]
            if graduate_id == _UNCHANGED:
                continue
            row = plan.rows[index]
            if graduate_id is None:
                inserts.append(inserter.row(row.phone, wanted, cohort_ids[key]))
                continue
            values = {"b_id": graduate_id, "b_cohort_id": cohort_ids[key], "b_updated_at": now}
            values.update((f"b_{k}", v) for k, v in wanted.items())
            updates.setdefault(tuple(sorted(wanted)), []).append(values)
            audits.extend(_change_audits(actor, plan.file, now, changes[row.line]))
        pacer.wait()
        connection = session.connection()
        pacer.holding()
        if inserts:
            try:
                inserter.execute(connection, inserts)
            except IntegrityError:
                if not chunked:
                    raise
                session.rollback()
                raise ImportConflict(
                    f"{plan.file}: a number on lines {plan.rows[start].line} to "
                    f"{plan.rows[end - 1].line} was added by someone else during the import; "
                    "import the file again to finish (the rows already imported stay)") from None
        for columns, params in updates.items():
            connection.execute(
                update(table).where(table.c.id == bindparam("b_id")).values(
                    {table.c[c]: bindparam(f"b_{c}")
                     for c in (*columns, "cohort_id", "updated_at")}), params)
        if audits:
            connection.execute(AuditLog.__table__.insert(), audits)
        if on_chunk is not None:
            on_chunk(session, end)
        if chunked:
            session.commit()
        pacer.released()
        if progress is not None:
            progress(end, total)
    pacer.wait()
    audit(session, actor, "import_roster", file=plan.file, created=report.created,
          updated=report.updated, unchanged=report.unchanged, rejected=plan.rejected_total,
          institutions_created=report.institutions_created,
          cohorts_created=report.cohorts_created, renamed=len(plan.renamed),
          moved=len(plan.moved))
    session.flush()
    return report


class _Inserter:
    """New graduates inserted with the driver's ``executemany``, their values prepared
    before the transaction begins.

    SQLAlchemy's own ``executemany`` converts every value of every row (dates to text on
    SQLite) while the statement runs, that is while it holds SQLite's writer lock; the
    values here are in their final form already (the timestamps, the same for every row,
    converted once by the column's own type), so the lock is held half as long."""

    COLUMNS = ("phone", "name", "skill", "language", "cohort_id", "active", "opted_out",
               "answer_guessed", "created_at", "updated_at")

    def __init__(self, dialect, now) -> None:
        table = Graduate.__table__
        compiled = table.insert().compile(dialect=dialect, column_keys=list(self.COLUMNS))
        self.sql = str(compiled)

        def stored(column: str, value: Any) -> Any:
            process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
            return process(value) if process is not None else value

        # The same for every row: active, not opted out, not guessed, created now.
        self.fixed = tuple(stored(column, value) for column, value in (
            ("active", True), ("opted_out", False), ("answer_guessed", False),
            ("created_at", now), ("updated_at", now)))
        order = list(compiled.positiontup or ())  # the driver's order of the values
        self.positional = bool(order)
        self.take = operator.itemgetter(*(self.COLUMNS.index(name) for name in order)) \
            if order else None

    def row(self, phone: str, wanted: dict[str, Any], cohort_id: int) -> Any:
        values = (phone, wanted["name"], wanted["skill"], wanted.get("language", "id"),
                  cohort_id) + self.fixed
        if self.positional:
            return self.take(values)
        return dict(zip(self.COLUMNS, values, strict=True))

    def execute(self, connection, rows: list[Any]) -> None:
        connection.exec_driver_sql(self.sql, rows)


class _Pacer:
    """Leaves SQLite's writer lock free between chunks long enough for others to take it.

    A writer waiting for SQLite's lock does not queue: it sleeps and tries again, up to
    100 ms apart. An import that began its next chunk the instant it committed would find the
    lock free every time and the waiting webhook almost never, for as long as the import
    lasted. So after each chunk the lock stays free for 20 to 80 % of the time the chunk held
    it (preparing the next chunk counts), a random share so as not to fall in step with the
    waiter's retries. PostgreSQL's row locks need none of this."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.since = self.until = 0.0

    def holding(self) -> None:
        if self.enabled:
            self.since = time.monotonic()

    def released(self) -> None:
        if self.enabled:
            now = time.monotonic()
            self.until = now + (now - self.since) * random.uniform(0.2, 0.8)

    def wait(self) -> None:
        if self.enabled and (left := self.until - time.monotonic()) > 0:
            time.sleep(left)


def _change_audits(actor: str, file: str, now, change: GraduateChange) -> list[dict[str, Any]]:
    """The audit entries of one rename or move (old -> new), as rows to insert."""
    found = []
    if "name" in change.changes:
        found.append(_audit_row(actor, "graduate.rename", now, {
            "graduate_id": change.graduate_id, "phone": change.phone, "file": file,
            "line": change.line, "changes": {"name": [change.old_name, change.name]}}))
    if "cohort" in change.changes:
        found.append(_audit_row(actor, "graduate.move", now, {
            "graduate_id": change.graduate_id, "phone": change.phone, "name": change.name,
            "file": file, "line": change.line,
            "changes": {"cohort": [change.old_cohort, change.cohort]}}))
    return found


def _audit_row(actor: str, action: str, now, detail: dict[str, Any]) -> dict[str, Any]:
    return {"actor": actor, "action": action, "detail": detail, "created_at": now}


def _write_cohorts(session: Session, plan: RosterPlan) -> dict[tuple[str, str], int]:
    """Create the plan's new institutions and cohorts, give cohorts the skill and training
    dates the file gives them; the id of every cohort the file names, by key."""
    institutions = {i.name.casefold(): i for i in session.scalars(select(Institution))}
    cohorts: dict[tuple[str, str], Cohort] = {
        (c.institution.name.casefold(), c.name.casefold()): c
        for c in session.scalars(select(Cohort).join(Institution))}
    dates: dict[tuple[str, str], dict[str, Any]] = {}
    for row in plan.rows:  # a later row's dates win, as when rows were applied one by one
        if row.training_start or row.training_end:
            given = dates.setdefault((row.institution.casefold(), row.cohort.casefold()), {})
            for name in ("training_start", "training_end"):
                if getattr(row, name) is not None:
                    given[name] = getattr(row, name)
    taken = set(session.scalars(select(Cohort.join_code)))  # one query, not one per cohort
    for key, (inst_name, cohort_name) in plan._cohort_names.items():
        cohort = cohorts.get(key)
        if cohort is None:
            inst = institutions.get(key[0])
            if inst is None:
                inst = institutions[key[0]] = Institution(name=inst_name)
                session.add(inst)
                session.flush()
            cohort = cohorts[key] = Cohort(institution_id=inst.id, name=cohort_name,
                                           skill=plan._cohort_skills[key],
                                           join_code=_join_code(taken))
            session.add(cohort)
        elif cohort.skill is None and plan._cohort_skills[key]:
            cohort.skill = plan._cohort_skills[key]
        for name, value in dates.get(key, {}).items():
            if getattr(cohort, name) != value:
                setattr(cohort, name, value)
    session.flush()
    return {key: cohorts[key].id for key in plan._cohort_names}


def _join_code(taken: set[str]) -> str:
    """A random join code no cohort has (``taken``: every cohort's, read in this transaction;
    the codes' unique index refuses a clash with a cohort added meanwhile)."""
    while (code := random_code()) in taken:
        pass
    taken.add(code)
    return code
