"""The scheduler process: check-in rounds per cohort, reminders and expiry (and the dispatcher).

APScheduler with a persistent SQLAlchemy job store in Kabar's own database. The cohorts table
is the source of truth; ``service.reconcile_jobs`` keeps one cron job per active cohort in step
with it. Run it with ``kabar scheduler`` or ``python -m scheduler``; several may run, and the
one holding the lock of ``leader`` runs the jobs while the others stand by.
"""
