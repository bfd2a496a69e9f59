"""Artifact volumes: deduplicated, encrypted snapshots of folders (docs/artifacts.md).

Everything lives under ``artifacts/`` of the repository:

- ``config``: the repository id and chunker parameters (plain JSON, nothing secret);
- ``keys/KEY``: the writer key (chunk-id key and chunker seed), age-encrypted to the recipients;
- ``packs/XX/PACK``: about 16 MiB of blobs, each zstd-compressed then age-encrypted;
- ``index/ID``: which blob is where in which pack, sealed with a key derived from the writer key
  (the backup job must read it to deduplicate);
- ``cache/SET/ID``: the backup job's stat cache per path set, sealed the same way;
- ``snapshots/ID``: a snapshot (root tree, paths, time, partial flag), age-encrypted, written
  last. Its name is the keyed hash of its content, so a changed snapshot is refused.

Trees (one per directory) are blobs like file content: age-encrypted and named by the keyed
hash of their bytes. The backup job holds the age *public* recipients and the writer key: it can
add snapshots but read none (no content, no names).
"""

PREFIX = "artifacts/"
COMPONENT = "artifacts"
