"""Configuration kept in git: a git bundle of every ref of the configuration repository, taken
when a ref changed ("on change"), stored under ``config/``, kept forever.

No retention policy is registered for this component, so prune never deletes it (the
runbook: Configuration, on change, infinite).
"""

from rfbackup.sources.config.gitbundle import COMPONENT, GitConfig

__all__ = ["COMPONENT", "GitConfig"]
