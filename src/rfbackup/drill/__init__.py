"""The monthly restore drill (``rfbackup drill``): restore the newest backups into scratch
targets, check them against their manifests and production, measure RTO and RPO, report.

Components plug in as modules of ``rfbackup.drill.checks`` (see ``registry``)."""
