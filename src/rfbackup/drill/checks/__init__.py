"""One module per component the drill restores and checks (see rfbackup.drill.registry)."""
