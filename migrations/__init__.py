"""Alembic migrations for Kabar's schema (run with ``kabar db upgrade``)."""
