"""Side-by-side timing of artifact snapshots against restic, same tree, same kind of repository.

    .venv/bin/python benchmarks/artifacts_backup.py                    # ~500 MB, 5000 small files
    .venv/bin/python benchmarks/artifacts_backup.py --size-mb 2000 --small-files 20000

Builds a tree of a few large binary files (checkpoint-like: half random, half compressible)
plus many small text and JSON files, then times, each tool in a fresh process on a local
repository in the same temp folder:

    1. the first snapshot;
    2. an unchanged re-snapshot;
    3. a snapshot after 5% of the files changed;
    4. a full restore of the last snapshot;

and reports the repository size and each step's peak RSS (from wait4). restic runs with its
default (auto) compression. A report, not a test: the exit code is non-zero only when a step
itself failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RFBACKUP = [sys.executable, "-m", "rfbackup"]


def make_tree(root: Path, size_mb: int, small: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    big = max(size_mb - small * 4 // 1024, 16)
    count = 4
    for i in range(count):
        path = root / "checkpoints" / f"model-{i}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            left = big * 1024 * 1024 // count
            while left > 0:
                n = min(left, 4 * 1024 * 1024)
                if rng.random() < 0.5:
                    fh.write(os.urandom(n))
                else:  # compressible: repeated float-like text
                    fh.write((f"{rng.random():.6f} " * (n // 9 + 1)).encode()[:n])
                left -= n
    for i in range(small):
        path = root / "runs" / f"run-{i // 500:03d}" / f"metrics-{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"run": i, "loss": [rng.random() for _ in range(rng.randint(10, 400))]}
        path.write_text(json.dumps(doc))


def change(root: Path, share: float, seed: int = 2) -> None:
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for p in rng.sample(files, max(1, int(len(files) * share))):
        if p.stat().st_size > 1024 * 1024:
            with open(p, "r+b") as fh:  # one region of a big file
                fh.seek(rng.randrange(p.stat().st_size - 1024))
                fh.write(os.urandom(1024))
        else:
            p.write_text(p.read_text() + " ")


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Seconds and peak RSS (MiB) of one run."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {err[-500:]}")
    return elapsed, usage.ru_maxrss // 1024


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--small-files", type=int, default=5000)
    ap.add_argument("--tmp-dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("restic is not installed (apt-get install restic)")
    tmp = Path(tempfile.mkdtemp(prefix="rfb-bench-art-", dir=args.tmp_dir))
    try:
        results = run(tmp, args.size_mb, args.small_files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'step':<24}{'rfbackup':>12}{'restic':>12}{'ratio':>8}{'rss MiB':>16}")
    for step, r in results["steps"].items():
        ratio = r["rfbackup"] / r["restic"] if r["restic"] else float("nan")
        rss = f"{r['rfbackup_rss']}/{r['restic_rss']}"
        print(f"{step:<24}{r['rfbackup']:>11.2f}s{r['restic']:>11.2f}s{ratio:>8.2f}{rss:>16}")
    rs, ss = results["repo_bytes"]["rfbackup"], results["repo_bytes"]["restic"]
    print(f"{'repository size':<24}{rs / 2**20:>10.1f}MiB{ss / 2**20:>10.1f}MiB{rs / ss:>8.2f}")
    mb_s, tree_mb = results["first_mb_s"], results["tree_mb"]
    print(f"first snapshot throughput: {mb_s:.1f} MB/s (tree {tree_mb:.0f} MB)")


def run(tmp: Path, size_mb: int, small: int) -> dict[str, Any]:
    src = tmp / "data"
    print(f"building a {size_mb} MB tree with {small} small files...", file=sys.stderr)
    make_tree(src, size_mb, small)
    tree_bytes = du(src)
    age_key = tmp / "id.txt"
    subprocess.run(["age-keygen", "-o", str(age_key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(age_key)], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    (tmp / "locks").mkdir(mode=0o700)
    # like an installed program (the image compiles its bytecode): cache it, and warm it up
    base = {k: v for k, v in os.environ.items() if not k.startswith("RFBACKUP_")}
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    rf = {
        **base,
        "RFBACKUP_CONFIG": str(tmp / "none.toml"),
        "RFBACKUP_REPOSITORY": str(tmp / "rf-repo"),
        "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
        "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(age_key),
        "RFBACKUP_ARTIFACTS__KEY_FILE": str(tmp / "writer.key"),
        "RFBACKUP_LOCKS__DIR": str(tmp / "locks"),
        "RFBACKUP_LOG_FILE": str(tmp / "rf.log"),
    }
    rs = {**base, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(tmp / "restic-repo"),
          "RESTIC_CACHE_DIR": str(tmp / "restic-cache")}  # fmt: skip
    subprocess.run(
        [*RFBACKUP, "artifacts", "init"], env=rf, cwd=tmp, check=True, capture_output=True
    )
    subprocess.run(["restic", "init"], env=rs, cwd=tmp, check=True, capture_output=True)
    warm = {**rf, "RFBACKUP_REPOSITORY": str(tmp / "warm-repo"),
            "RFBACKUP_ARTIFACTS__KEY_FILE": str(tmp / "warm.key")}  # fmt: skip
    (tmp / "warm").mkdir()
    (tmp / "warm" / "f").write_text("warm")
    for cmd in (["artifacts", "init"], ["backup", "artifacts", str(tmp / "warm")],
                ["restore", "artifacts", "latest", str(tmp / "warm-out")]):  # fmt: skip
        subprocess.run([*RFBACKUP, *cmd], env=warm, cwd=tmp, check=True, capture_output=True)
    steps: dict[str, dict[str, float]] = {}

    def both(step: str, ours: list[str], theirs: list[str]) -> None:
        print(f"{step}...", file=sys.stderr)
        a, a_rss = timed([*RFBACKUP, *ours], rf, tmp)
        b, b_rss = timed(["restic", *theirs], rs, tmp)
        steps[step] = {"rfbackup": a, "restic": b, "rfbackup_rss": a_rss, "restic_rss": b_rss}

    both("first snapshot", ["backup", "artifacts", str(src)], ["backup", str(src)])
    both("unchanged snapshot", ["backup", "artifacts", str(src)], ["backup", str(src)])
    change(src, 0.05)
    both("after 5% changed", ["backup", "artifacts", str(src)], ["backup", str(src)])
    both("full restore", ["restore", "artifacts", "latest", str(tmp / "rf-out")],
         ["restore", "latest", "--target", str(tmp / "restic-out")])  # fmt: skip
    first = steps["first snapshot"]["rfbackup"]
    return {
        "tree_mb": tree_bytes / 1e6,
        "steps": steps,
        "repo_bytes": {"rfbackup": du(tmp / "rf-repo"), "restic": du(tmp / "restic-repo")},
        "first_mb_s": tree_bytes / 1e6 / first,
    }


if __name__ == "__main__":
    main()
