"""PostgreSQL: logical backups (pg_dump out, psql / pg_restore in) and the physical base
backups of point-in-time recovery (rfbackup.pitr, pruned with its WAL by `pitr prune`)."""

from rfbackup.engine.registry import Keep, register_retention

register_retention("postgres", lambda s: Keep(s.postgres.keep_days, s.postgres.keep_min))
