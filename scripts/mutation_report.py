"""Print the mutation score from mutmut's export-cicd-stats file (used by `make mutation`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    stats = json.loads(Path(path).read_text())
    killed = stats["killed"] + stats["timeout"]
    judged = killed + stats["survived"] + stats["no_tests"] + stats["suspicious"]
    if judged == 0:
        print("mutation: no mutant was run", file=sys.stderr)
        return 1
    print(
        f"mutation score: {killed}/{judged} killed ({100 * killed / judged:.1f}%), "
        f"{stats['survived']} survived, {stats['no_tests']} not reached by any test"
    )
    print("surviving mutants (`.venv/bin/mutmut show NAME` shows one):")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
