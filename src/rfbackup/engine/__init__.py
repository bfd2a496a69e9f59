"""The engine: what every source's backup has in common.

``job`` runs a backup of any :class:`~rfbackup.engine.source.Source` (lease, partial clean-up,
unique key, compress/encrypt/hash stream, sidecars, manifest LAST, rollback, fallback, replica,
RunReport). A source supplies only the bytes and what it knows about them. See
docs/architecture.md for the shape and the rule for adding a source.
"""
