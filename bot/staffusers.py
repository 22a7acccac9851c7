"""Staff users of the console: add one, or update the role and password of an existing one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import STAFF_ROLES, Institution, StaffUser, audit
from bot.phones import PhoneError, normalize_phone

MIN_PASSWORD_LENGTH = 8


class StaffError(ValueError):
    """A staff user cannot be saved as asked; the message says what to change."""


def add_staff(session: Session, *, name: str, role: str, password: str,
              institution: str | None = None, phone: str | None = None,
              actor: str = "cli") -> tuple[StaffUser, bool]:
    """Create staff user ``name``, or update role, password and institution if it exists.

    Returns the user and whether it was created. A ``viewer`` sees one institution only, so it
    must name an existing one. The phone (for SIARAN/REKAP from WhatsApp) is kept when not given.
    """
    name = " ".join((name or "").split())
    if not name:
        raise StaffError("a staff user needs a name")
    if role not in STAFF_ROLES:
        raise StaffError(f"role must be one of {', '.join(STAFF_ROLES)}, not {role!r}")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")

    inst = None
    institution = (institution or "").strip() or None
    if institution is not None:
        inst = session.scalar(select(Institution).where(
            func.lower(Institution.name) == institution.lower()))
        if inst is None:
            raise StaffError(f"unknown institution {institution!r} "
                             f"(known: {_known_institutions(session)})")
    elif role == "viewer":
        raise StaffError("a viewer sees one institution: give --institution NAME "
                         f"(known: {_known_institutions(session)})")

    user = session.scalar(select(StaffUser).where(StaffUser.name == name))
    number = None
    if phone:
        try:
            number = normalize_phone(phone)
        except PhoneError as exc:
            raise StaffError(f"phone: {exc}; write it like 0812-3456-7890") from None
        holder = session.scalar(select(StaffUser).where(StaffUser.phone == number))
        if holder is not None and holder is not user:
            raise StaffError(f"phone {number} already belongs to staff user {holder.name!r}")

    created = user is None
    if user is None:
        user = StaffUser(name=name)
        session.add(user)
    user.role = role
    user.institution_id = inst.id if inst else None
    user.institution = inst
    if number is not None:
        user.phone = number
    user.active = True
    user.set_password(password)
    session.flush()
    audit(session, actor, "staff_add" if created else "staff_update", name=name, role=role,
          institution=inst.name if inst else None, phone=user.phone)
    return user, created


def _known_institutions(session: Session) -> str:
    names = session.scalars(select(Institution.name).order_by(Institution.name)).all()
    return ", ".join(names) if names else "none yet: import a roster first"
