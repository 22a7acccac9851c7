"""The scheduler process: check-in rounds per cohort, reminders and expiry (and the dispatcher).

One APScheduler process with a persistent SQLAlchemy job store in Kabar's own database. The
cohorts table is the source of truth; ``service.reconcile_jobs`` keeps one cron job per active
cohort in step with it. Run it with ``kabar scheduler`` or ``python -m scheduler``.
"""
