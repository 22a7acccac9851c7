"""The message catalog: every text the bot sends, per language, in TOML files a deployer can edit.

``catalog/id.toml`` is complete and the default; ``catalog/en.toml`` must have the same keys.
Texts use ``{name}`` placeholders (``str.format``); a deployer edits the files in place.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

CATALOG_DIR = Path(__file__).parent
LANGUAGES = ("id", "en")


class CatalogError(KeyError):
    """A text key missing from a catalog, or a placeholder the text needs but was not given."""


@cache
def load(language: str) -> dict[str, str]:
    """All texts of one language, flattened to dotted keys ('checkin.prompt')."""
    path = CATALOG_DIR / f"{language}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(dotted + ".", value)
            else:
                flat[dotted] = str(value)

    walk("", data)
    return flat


def text(language: str, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (falling back to Indonesian), filled with ``values``."""
    lang = language if language in LANGUAGES else "id"
    texts = load(lang)
    if key not in texts:
        texts = load("id")
        if key not in texts:
            raise CatalogError(f"catalog has no text {key!r} (bot/catalog/id.toml)")
    try:
        return texts[key].format(**values)
    except KeyError as exc:
        raise CatalogError(f"catalog text {key!r} needs a value for {exc}") from None
