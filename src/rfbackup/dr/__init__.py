"""Disaster recovery: STANDBY/LIVE mode switching and the runbook's playbooks (``rfbackup dr``)."""
