"""One package per thing we back up. Each yields a stream plus metadata and can restore it."""
