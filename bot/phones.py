"""Phone numbers: everything stored is E.164 (``+6281234567890``); WhatsApp adds ``whatsapp:``."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "ID"


class PhoneError(ValueError):
    """A text that is not a usable mobile number."""


def normalize_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """'0812-3456-7890', '+62 812…', '62812…', '812…', 'whatsapp:+62…' -> '+62812…'."""
    raw = (text or "").strip()
    if raw.lower().startswith("whatsapp:"):
        raw = raw[len("whatsapp:"):]
    raw = raw.strip()
    if not raw:
        raise PhoneError("no phone number")
    digits = "".join(ch for ch in raw if ch.isdigit())
    candidate = raw
    if not raw.startswith("+") and region == "ID":
        # Indonesian habits: 62812… without the plus, or 812… without the trunk 0.
        if digits.startswith("62"):
            candidate = "+" + digits
        elif digits.startswith("8"):
            candidate = "0" + digits
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"{text!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_whatsapp(e164: str) -> str:
    return f"whatsapp:{e164}"


def from_whatsapp(address: str) -> str:
    """'whatsapp:+62812…' -> '+62812…' (normalised)."""
    return normalize_phone(address)
