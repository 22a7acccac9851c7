"""How well Kabar reads real graduates' replies: the corpus and the simulated graduates.

    .venv/bin/python benchmarks/understanding.py [--part tuning|heldout] [--keep DIR]

Runs, in a fresh migrated SQLite database, every reply of ``tests/corpus/{tuning,heldout}``
through the real app (signed webhook, a check-in round started for the cohort, the bot brought
to the question the reply answers with plain answers), then every simulated graduate through a
whole check-in, and judges both on ``kabar export progress`` and ``kabar export interests``.
Prints field accuracy per question for the tuning and the held-out part side by side, overall,
and the wrong fields of the tuning part only (held-out texts are never printed).

Exit status: 0 when the held-out field accuracy reaches ``HELDOUT_TARGET``, else 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.corpus.harness import (  # noqa: E402
    HELDOUT_TARGET,
    evaluate,
    part_accuracy,
    report,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["tuning", "heldout"], action="append",
                        help="run only this part (repeatable; default: both)")
    parser.add_argument("--keep", type=Path, help="keep the database and exports in DIR")
    args = parser.parse_args(argv)
    parts = args.part or ["tuning", "heldout"]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = evaluate(folder=args.keep, parts=parts)
    print(report(results))
    print(f"({time.monotonic() - started:.1f} s)")
    if "heldout" in results:
        return 0 if part_accuracy(results, "heldout") >= HELDOUT_TARGET else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
