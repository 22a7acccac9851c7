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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.joincodes import new_join_code
from bot.models import Cohort, Graduate, Institution, audit
from bot.roster import (
    PROGRESS_EVERY,
    ImportProblem,
    ImportReport,
    RosterRow,
    _graduates_by_phone,
    parse_roster,
)

LISTED = 20  # rows of each kind the command line prints


@dataclass(frozen=True)
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
    # how each row is applied: (cohort key, wanted values, graduate id or None)
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


def _cohort_key(row: RosterRow) -> tuple[str, str]:
    return (row.institution.casefold(), row.cohort.casefold())


def plan_roster(session: Session, path: Path, *, limits=None,
                allow_erased: bool = False) -> RosterPlan:
    """Read ``path`` (within ``limits``, ``bot.rosterfile.ReadLimits``) and work out what
    importing it would change; writes nothing. Numbers of graduates erased on request are
    refused (a problem on their line) unless ``allow_erased``."""
    from bot.privacy import refuse_erased

    path = Path(path)
    rows, problems = parse_roster(path, limits)
    if not allow_erased:
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
    for row in rows:
        key = _cohort_key(row)
        inst = institutions.get(key[0])
        if inst is None and key[0] not in new_institutions:
            new_institutions[key[0]] = row.institution
        cohort = cohorts.get(key)
        if key not in plan._cohort_names:
            inst_name = inst.name if inst is not None else new_institutions[key[0]]
            plan._cohort_names[key] = (inst_name, cohort.name if cohort else row.cohort)
            plan._cohort_skills[key] = cohort.skill if cohort else row.skill
            if cohort is None:
                plan.new_cohorts.append(f"{inst_name}/{row.cohort}")
        if plan._cohort_skills[key] is None and row.skill:
            plan._cohort_skills[key] = row.skill
            if cohort is not None:
                cohort_skill_fills.append((cohort.id, row.skill))
        for name in ("training_start", "training_end"):
            given = getattr(row, name, None)
            if given is not None and cohort is not None and getattr(cohort, name) != given:
                cohort_dates.append([cohort.id, name, getattr(cohort, name), given])
        label = "/".join(plan._cohort_names[key])
        wanted: dict[str, Any] = {"name": row.name,
                                  "skill": row.skill or plan._cohort_skills[key]}
        if row.language:
            wanted["language"] = row.language
        grad = existing.get(row.phone)
        if grad is None:
            plan.created.append(GraduateChange(row.line, row.phone, row.name, label))
            plan._steps.append((key, wanted, None))
            changes_digest.append(["create", row.phone, label, sorted(wanted.items())])
            continue
        old = by_id.get(grad.cohort_id)
        old_label = f"{old.institution.name}/{old.name}" if old is not None else "-"
        changed = [k for k, v in wanted.items() if getattr(grad, k) != v]
        if cohort is None or grad.cohort_id != cohort.id:
            changed.insert(1 if "name" in changed else 0, "cohort")
        if changed:
            plan.changed.append(GraduateChange(
                row.line, row.phone, row.name, label, graduate_id=grad.id, old_name=grad.name,
                old_cohort=old_label, changes=tuple(changed)))
            changes_digest.append(["change", grad.id, row.phone, label, old_label,
                                   [[k, getattr(grad, k), wanted.get(k)]
                                    for k in changed if k != "cohort"]])
        else:
            plan.unchanged += 1
            changes_digest.append(["same", grad.id])
        plan._steps.append((key, wanted, grad.id))
    plan.new_institutions = list(new_institutions.values())
    plan.absent = _absent(session, [c.id for k, c in cohorts.items()
                                    if k in plan._cohort_names], {r.phone for r in rows})
    plan.digest = hashlib.sha256(json.dumps(
        [plan.file, plan.new_institutions, plan.new_cohorts, cohort_skill_fills, cohort_dates,
         changes_digest, [[p.line, p.reason] for p in problems]],
        default=str, ensure_ascii=False).encode("utf-8")).hexdigest()
    return plan


def _absent(session: Session, cohort_ids: list[int], phones: set[str]) -> int:
    if not cohort_ids:
        return 0
    listed = session.scalars(select(Graduate.phone).where(
        Graduate.cohort_id.in_(cohort_ids), Graduate.active.is_(True)))
    return sum(1 for phone in listed if phone not in phones)


COMMIT_EVERY = 500  # rows per transaction of a chunked import


def apply_plan(session: Session, plan: RosterPlan, *, actor: str,
               progress: Callable[[int], Any] | None = None,
               chunked: bool = False) -> ImportReport:
    """Write ``plan`` (from ``plan_roster`` in this session); the caller commits.

    With ``chunked`` the rows go in transactions of ``COMMIT_EVERY`` rows, each committed
    here, so the database's writer lock is free between them and a webhook or a reply waits
    for one chunk at most (on SQLite a transaction of 500 rows takes milliseconds), never
    for the whole file. An import stopped halfway keeps the chunks written; importing the
    same file again adds the rest (rows are matched by number)."""
    report = ImportReport(file=plan.file, rejected=plan.rejected, created=len(plan.created),
                          updated=len(plan.changed), unchanged=plan.unchanged,
                          institutions_created=len(plan.new_institutions),
                          cohorts_created=len(plan.new_cohorts))
    institutions = {i.name.casefold(): i for i in session.scalars(select(Institution))}
    cohorts: dict[tuple[str, str], Cohort] = {
        (c.institution.name.casefold(), c.name.casefold()): c
        for c in session.scalars(select(Cohort).join(Institution))}
    changed_ids = [c.graduate_id for c in plan.changed]
    graduates: dict[int, Graduate] = {}
    for start in range(0, len(changed_ids), 500):
        graduates.update((g.id, g) for g in session.scalars(select(Graduate).where(
            Graduate.id.in_(changed_ids[start:start + 500]))))
    for done, (key, wanted, graduate_id) in enumerate(plan._steps, start=1):
        cohort = cohorts.get(key)
        if cohort is None:
            inst_name, cohort_name = plan._cohort_names[key]
            inst = institutions.get(key[0])
            if inst is None:
                inst = institutions[key[0]] = Institution(name=inst_name)
                session.add(inst)
                session.flush()
            cohort = cohorts[key] = Cohort(institution_id=inst.id, name=cohort_name,
                                           skill=plan._cohort_skills[key],
                                           join_code=new_join_code(session))
            session.add(cohort)
            session.flush()
        elif cohort.skill is None and plan._cohort_skills[key]:
            cohort.skill = plan._cohort_skills[key]
        row = plan.rows[done - 1]
        for name in ("training_start", "training_end"):  # given dates set the cohort's
            given = getattr(row, name, None)
            if given is not None and getattr(cohort, name) != given:
                setattr(cohort, name, given)
        values = {**wanted, "cohort_id": cohort.id}
        if graduate_id is None:
            session.add(Graduate(phone=plan.rows[done - 1].phone, **values))
        elif graduate_id in graduates:
            for k, v in values.items():
                setattr(graduates[graduate_id], k, v)
        if chunked and done % COMMIT_EVERY == 0:
            session.commit()
        if done % PROGRESS_EVERY == 0:
            session.flush()
            if progress is not None:
                progress(done)
    for change in plan.renamed:
        audit(session, actor, "graduate.rename", graduate_id=change.graduate_id,
              phone=change.phone, file=plan.file, line=change.line,
              changes={"name": [change.old_name, change.name]})
    for change in plan.moved:
        audit(session, actor, "graduate.move", graduate_id=change.graduate_id,
              phone=change.phone, name=change.name, file=plan.file, line=change.line,
              changes={"cohort": [change.old_cohort, change.cohort]})
    session.flush()
    audit(session, actor, "import_roster", file=plan.file, created=report.created,
          updated=report.updated, unchanged=report.unchanged, rejected=plan.rejected_total,
          institutions_created=report.institutions_created,
          cohorts_created=report.cohorts_created, renamed=len(plan.renamed),
          moved=len(plan.moved))
    return report
