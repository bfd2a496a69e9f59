"""PostgreSQL logical backups: pg_dump out, psql / pg_restore in."""
