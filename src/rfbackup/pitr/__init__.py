"""Point-in-time recovery: physical base backups, the WAL archive, and recovery to a target.

Modules: ``walnames`` (names and LSN arithmetic), ``archive`` (the ``wal/`` prefix of a
repository), ``walcmd`` (PostgreSQL's archive_command / restore_command, kept lean),
``basebackup``, ``recover``, ``chain`` (gaps and timelines), ``retention``, ``setup``.
"""
