"""A graduate's page: profile, every round's answers beside the raw text, full history."""

from __future__ import annotations
