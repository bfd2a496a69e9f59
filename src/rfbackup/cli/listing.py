"""``rfbackup list``: the Typer command; the work is in cli/listview.py (no Typer there)."""

from __future__ import annotations

from rfbackup.cli.common import ComponentOption, EnvOption, JsonOption, RepoOption


def list_backups(
    components: ComponentOption = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """List backups of every component, newest first, with their status.

    Logical dumps, base backups, Redis snapshots... one line summing up the WAL
    archive (first and last segment, gaps) and one for the artifact snapshots (how many,
    newest, stored size; `rfbackup artifacts list` shows them). Files without a manifest
    (e.g. made by the old scripts) are shown as no-manifest. Exits 8 after the listing
    when a manifest could not be read (its backup's state is unknown).
    """
    from rfbackup.cli.listview import show

    show(components, env, repo, as_json)
