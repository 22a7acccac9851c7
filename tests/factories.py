"""Small builders for test data, shaped like the real thing (LPKS, paket, graduates)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.models import Cohort, Graduate, Institution


def make_cohort(session: Session, name: str = "Menjahit 1", institution: str = "LPKS A'nur",
                skill: str = "menjahit", join_code: str | None = None,
                schedule: str | None = None) -> Cohort:
    inst = session.query(Institution).filter_by(name=institution).one_or_none()
    if inst is None:
        inst = Institution(name=institution)
        session.add(inst)
        session.flush()
    cohort = Cohort(institution_id=inst.id, name=name, skill=skill,
                    join_code=join_code or name.upper().replace(" ", "")[:12],
                    checkin_schedule=schedule, timezone="Asia/Jakarta")
    session.add(cohort)
    session.flush()
    return cohort


def make_graduates(session: Session, cohort: Cohort, count: int = 3,
                   first_phone: int = 6281200000001) -> list[Graduate]:
    grads = [Graduate(cohort_id=cohort.id, name=f"Lulusan {cohort.name} {i + 1}",
                      phone=f"+{first_phone + i}", skill=cohort.skill)
             for i in range(count)]
    session.add_all(grads)
    session.flush()
    return grads
