"""Artifact snapshots against restic: same tree, same kind of repository, one run, ratios.

    .venv/bin/python benchmarks/artifacts_vs_restic.py          # 2 GB + 20k files, then 200k files
    .venv/bin/python benchmarks/artifacts_vs_restic.py --size-mb 500 --small-files 5000 \\
        --many-files 50000                                      # a quicker run
    .venv/bin/python benchmarks/artifacts_vs_restic.py --many-files 0   # skip the 200k-file part

Part 1 builds a tree of a few large binary files (checkpoint-like: half random, half
compressible) plus small text and JSON files, then times, each tool in a fresh process on a
local repository in the same temp folder (restic with compression on, its default ``auto``):

    1. the first snapshot (and our throughput in MB/s);
    2. an unchanged re-snapshot;
    3. a snapshot after 5% of the files changed;
    4. a full restore of the last snapshot;

and compares the repository sizes. Part 2 backs up and restores a tree of many small files
(default 200,000: 400 folders of 500) with both tools and reports each one's peak RSS (wait4).
Both restores are compared file by file with the source (size and content hash).
A report, not a test: the exit code is non-zero only when a step itself failed.
"""

from __future__ import annotations

import argparse
import hashlib
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
TARGETS = {  # step -> (limit of ours/restic)
    "first snapshot": 1.0,
    "unchanged snapshot": 1.0,
    "after 5% changed": 1.0,
    "full restore": 1.0,
}
REPO_LIMIT = 1.05
RSS_LIMIT_MB = 250.0


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
        if i % 2:
            doc = {"run": i, "loss": [rng.random() for _ in range(rng.randint(10, 400))]}
            path.write_text(json.dumps(doc))
        else:  # plain text logs
            path.with_suffix(".log").write_text(
                "".join(f"step {s} loss {rng.random():.5f}\n" for s in range(rng.randint(5, 200)))
            )


def make_many(root: Path, count: int, per_dir: int = 500, seed: int = 3) -> None:
    rng = random.Random(seed)
    for i in range(count):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"f{i}.json").write_text(json.dumps({"i": i, "v": rng.random()}) * rng.randint(1, 8))


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


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds and peak RSS (decimal MB) of one run, after a sync (untimed)."""
    os.sync()
    out = cwd / "rss.txt"
    # /usr/bin/time forks the tool from a small process: wait4 on our own child would count
    # this script's pages, which a forked child shares until it execs
    start = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(out), *cmd], env=env, cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed: {proc.stderr.decode()[-800:]}")
    return elapsed, int(out.read_text().split()[-1]) * 1024 / 1e6


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def digest(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                md5 = hashlib.file_digest(fh, "md5").hexdigest()
            out[str(p.relative_to(root))] = (p.stat().st_size, md5)
        elif p.is_dir() and not any(p.iterdir()):
            out[str(p.relative_to(root)) + "/"] = (0, "")
    return out


def same_tree(src: Path, restored: Path, who: str) -> None:
    if digest(src) != digest(restored):
        raise SystemExit(f"{who}'s restore differs from the source tree")


class Tools:
    """Both tools' environments in one temp folder; ours byte-compiled and warmed up."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp = tmp
        age_key = tmp / "id.txt"
        if not age_key.exists():
            subprocess.run(["age-keygen", "-o", str(age_key)], check=True, capture_output=True)
            (tmp / "locks").mkdir(mode=0o700)
        public = subprocess.run(["age-keygen", "-y", str(age_key)], check=True,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        # like an installed program (the image compiles its bytecode): keep the cache
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RFBACKUP_", "RESTIC_"))}
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        self.rf = {
            **base,
            "RFBACKUP_CONFIG": str(tmp / "none.toml"),
            "RFBACKUP_REPOSITORY": str(tmp / f"rf-{name}"),
            "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
            "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(age_key),
            "RFBACKUP_ARTIFACTS__KEY_FILE": str(tmp / f"{name}.key"),
            "RFBACKUP_LOCKS__DIR": str(tmp / "locks"),
            "RFBACKUP_LOG_FILE": str(tmp / "rf.log"),
        }
        self.rs = {**base, "RESTIC_PASSWORD": "bench",
                   "RESTIC_REPOSITORY": str(tmp / f"restic-{name}"),
                   "RESTIC_CACHE_DIR": str(tmp / "restic-cache"),
                   "RESTIC_COMPRESSION": "auto"}  # fmt: skip
        self.ours("artifacts", "init")
        subprocess.run(["restic", "init"], env=self.rs, cwd=tmp, check=True, capture_output=True)

    def ours(self, *args: str) -> None:
        subprocess.run([*RFBACKUP, *args], env=self.rf, cwd=self.tmp, check=True,
                       capture_output=True)  # fmt: skip

    def both(self, ours: list[str], theirs: list[str]) -> dict[str, float]:
        a, a_rss = timed([*RFBACKUP, *ours], self.rf, self.tmp)
        b, b_rss = timed(["restic", *theirs], self.rs, self.tmp)
        return {"rfbackup": a, "restic": b, "rfbackup_rss": a_rss, "restic_rss": b_rss}

    def backup(self, src: Path) -> dict[str, float]:
        return self.both(["backup", "artifacts", str(src)], ["backup", "-q", str(src)])

    def restore(self, out: str) -> dict[str, float]:
        ours, theirs = self.tmp / f"rf-{out}", self.tmp / f"restic-{out}"
        return self.both(["restore", "artifacts", "latest", str(ours)],
                         ["restore", "latest", "--target", str(theirs)])  # fmt: skip

    def repo_bytes(self, name: str) -> dict[str, int]:
        return {"rfbackup": du(self.tmp / f"rf-{name}"), "restic": du(self.tmp / f"restic-{name}")}


def warm_up(tmp: Path) -> None:
    warm = Tools(tmp, "warm")
    (tmp / "warm").mkdir()
    (tmp / "warm" / "f").write_text("warm")
    warm.ours("backup", "artifacts", str(tmp / "warm"))
    warm.ours("restore", "artifacts", "latest", str(tmp / "warm-out"))


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def part_one(tmp: Path, size_mb: int, small: int) -> dict[str, Any]:
    src = tmp / "data"
    say(f"building a {size_mb} MB tree with {small} small files")
    make_tree(src, size_mb, small)
    tree_bytes = du(src)
    tools = Tools(tmp, "main")
    steps: dict[str, dict[str, float]] = {}
    for step in ("first snapshot", "unchanged snapshot", "after 5% changed"):
        if step == "after 5% changed":
            change(src, 0.05)
        say(step)
        steps[step] = tools.backup(src)
    say("full restore")
    steps["full restore"] = tools.restore("out")
    for who in ("rf", "restic"):
        inner = tmp / f"{who}-out" / src.relative_to("/")
        same_tree(src, inner if who == "restic" else tmp / f"{who}-out" / src.name, who)
        shutil.rmtree(tmp / f"{who}-out")
    repo = tools.repo_bytes("main")
    shutil.rmtree(src)
    return {
        "tree_mb": tree_bytes / 1e6,
        "steps": steps,
        "repo_bytes": repo,
        "first_mb_s": tree_bytes / 1e6 / steps["first snapshot"]["rfbackup"],
    }


def part_two(tmp: Path, count: int) -> dict[str, Any]:
    src = tmp / "many"
    say(f"building a tree of {count} small files")
    make_many(src, count)
    tools = Tools(tmp, "many")
    say("backup of the many-file tree")
    backup = tools.backup(src)
    say("restore of the many-file tree")
    restore = tools.restore("many-out")
    same_tree(src, tmp / "rf-many-out" / src.name, "rf")
    same_tree(src, tmp / "restic-many-out" / src.relative_to("/"), "restic")
    return {"files": count, "backup": backup, "restore": restore}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(res: dict[str, Any]) -> None:
    print(f"load average at start {res['load'][0]}, at end {res['load'][1]}; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    if "main" in res:
        r = res["main"]
        print(f"tree {r['tree_mb']:.0f} MB; restic {res['restic']}")
        print(f"{'measure':<24}{'rfbackup':>11}{'restic':>11}{'ratio':>8}{'target':>9}  result")
        for step, s in r["steps"].items():
            ratio = s["rfbackup"] / s["restic"]
            ok = "PASS" if ratio <= TARGETS[step] else "FAIL"
            print(f"{step + ' (s)':<24}{s['rfbackup']:>11.2f}{s['restic']:>11.2f}{ratio:>8.2f}"
                  f"{'<= ' + str(TARGETS[step]):>9}  {ok}")  # fmt: skip
        a, b = r["repo_bytes"]["rfbackup"], r["repo_bytes"]["restic"]
        ok = "PASS" if a / b <= REPO_LIMIT else "FAIL"
        print(f"{'repository size (MB)':<24}{a / 1e6:>11.1f}{b / 1e6:>11.1f}{a / b:>8.3f}"
              f"{'<= ' + str(REPO_LIMIT):>9}  {ok}")  # fmt: skip
        print(f"first snapshot throughput: {r['first_mb_s']:.1f} MB/s")
        rss = ", ".join(f"{k} {s['rfbackup_rss']:.0f}/{s['restic_rss']:.0f}"
                        for k, s in r["steps"].items())  # fmt: skip
        print(f"peak RSS MB (rfbackup/restic): {rss}")
    if "many" in res:
        m = res["many"]
        print(f"\n{m['files']} small files        rfbackup     restic   ratio")
        for step in ("backup", "restore"):
            s = m[step]
            print(f"{step + ' time (s)':<24}{s['rfbackup']:>9.2f}{s['restic']:>11.2f}"
                  f"{s['rfbackup'] / s['restic']:>8.2f}")  # fmt: skip
        for step in ("backup", "restore"):
            s = m[step]
            ok = "PASS" if s["rfbackup_rss"] <= RSS_LIMIT_MB else "FAIL"
            print(f"{step + ' peak RSS (MB)':<24}{s['rfbackup_rss']:>9.0f}{s['restic_rss']:>11.0f}"
                  f"{s['rfbackup_rss'] / s['restic_rss']:>8.2f}  ours <= {RSS_LIMIT_MB:.0f} MB"
                  f"  {ok}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=2000, help="part 1 tree size (default 2000)")
    ap.add_argument("--small-files", type=int, default=20000, help="part 1 small files")
    ap.add_argument("--many-files", type=int, default=200_000, help="part 2 files (0: skip)")
    ap.add_argument("--skip-main", action="store_true", help="run part 2 only")
    ap.add_argument("--tmp-dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit(
            "restic is not installed (scripts/bootstrap.sh, or apt-get install restic)"
        )
    version = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout
    res: dict[str, Any] = {"restic": " ".join(version.split()[:2]), "load": [load()]}
    tmp = Path(tempfile.mkdtemp(prefix="rfb-bench-art-", dir=args.tmp_dir))
    try:
        warm_up(tmp)
        if not args.skip_main:
            res["main"] = part_one(tmp, args.size_mb, args.small_files)
        if args.many_files:
            res["many"] = part_two(tmp, args.many_files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["load"].append(load())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)


if __name__ == "__main__":
    main()
