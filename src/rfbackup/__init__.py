"""rfbackup: backup and disaster recovery for ResearchFlow."""

__version__ = "0.1.0"
