"""Console texts in Indonesian (default) and English: ``text/id/*.toml`` and ``text/en/*.toml``,
one file per page, merged (a test checks both languages have the same keys).

The language is the user's choice (``?lang=en`` stores it in the session), else ``app.language``.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from flask import g, request, session

TEXT_DIR = Path(__file__).parent / "text"
LANGUAGES = ("id", "en")


@cache
def _texts(language: str) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[f"{prefix}{key}"] = str(value)

    for path in sorted((TEXT_DIR / language).glob("*.toml")):
        walk("", tomllib.loads(path.read_text(encoding="utf-8")))
    return flat


def current_language() -> str:
    """The request's language, worked out once per request (a page asks hundreds of times)."""
    language = g.get("kabar_language")
    if language is None:
        from bot import get_settings

        chosen = request.args.get("lang")
        if chosen in LANGUAGES:
            session["lang"] = chosen
        language = g.kabar_language = session.get("lang") or get_settings().app.language
    return language


def t(key: str, **values: object) -> str:
    """The console text ``key`` in the current language (Indonesian when missing)."""
    texts = _texts(current_language())
    template = texts.get(key) or _texts("id").get(key) or key
    return template.format(**values) if values else template
