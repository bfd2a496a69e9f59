"""Bad configuration is one line on stderr and exit 3, never a traceback, never a silent guess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import RFBACKUP, Env, base_env
from test_s3_backups import keypair

from rfbackup.errors import ConfigError
from rfbackup.storage import check_url


def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RFBACKUP, *args],
        cwd=cwd,
        env={**base_env(cwd), **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree(root: Path) -> list[str]:
    """Every file and folder under ``root`` (an independent look, not rfbackup's listing)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(r: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


BAD_URLS = [
    "s3:/bucket/x",
    "s3//bucket",
    "S3://bucket/x",
    "s3:bucket",
    "gs://bucket/x",
    "https://example.com/b",
    "backups:old",
    "s3://ab",
    "s3://Bad_Bucket/x",
    "file:relative",
    "file://relative/path",
    "",
]
GOOD_URLS = ["backups", "./s3:x", "old/back:ups", "/srv/a:b", "file:///srv/b", "s3://abc/x/y"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(ConfigError, match="URL"):
        check_url(url)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize("url", ["s3:/bucket/x", "s3//bucket", "S3://bucket/x"])
def test_bad_repository_url_on_the_command_line(tmp_path: Path, url: str) -> None:
    (tmp_path / "logs").mkdir()
    before = tree(tmp_path)
    r = run(tmp_path, "list", "--repo", url)
    one_error_line(r, 3, repr(url))
    assert tree(tmp_path) == before  # no folder named "s3:" or "s3" was made


def test_bad_repository_url_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    before = tree(tmp_path)
    one_error_line(run(tmp_path, "list", RFBACKUP_REPOSITORY="s3:/bucket/x"), 3, "repository")
    one_error_line(run(tmp_path, "prune", RFBACKUP_REPLICA__URL="s3//bucket"), 3, "replica")
    assert tree(tmp_path) == before


def test_plain_paths_still_work(tmp_path: Path) -> None:
    for url in ("./s3:x", f"file://{tmp_path}/repo"):
        r = run(tmp_path, "list", "--json", "--repo", url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args",
    [
        ("prune", "--keep-days", "99999999999"),
        ("prune", "--keep-days", "100000"),
        ("pitr", "prune", "--keep-days", "99999999999"),
        ("prune-databases", "--keep-days", "99999999999"),
    ],
)
def test_huge_keep_days_is_refused_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = run(tmp_path, *args, "--dry-run")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "--keep-days" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_huge_keep_days_in_the_configuration(tmp_path: Path) -> None:
    one_error_line(
        run(tmp_path, "prune", "--dry-run", RFBACKUP_POSTGRES__KEEP_DAYS="99999999999"),
        3,
        "keep_days",
    )
    (tmp_path / "rfbackup.toml").write_text("[pitr]\nkeep_days = 99999999999\n")
    one_error_line(run(tmp_path, "pitr", "prune", "--dry-run"), 3, "keep_days")


def test_unknown_key_in_the_toml_file_suggests_the_right_one(tmp_path: Path) -> None:
    (tmp_path / "rfbackup.toml").write_text("[postgres]\nkeep_mn = 5\n")
    line = one_error_line(run(tmp_path, "list"), 3, "keep_mn", "keep_min")
    assert "rfbackup.toml" in line
    (tmp_path / "rfbackup.toml").write_text('repositry = "s3://bucket/x"\n')
    one_error_line(run(tmp_path, "list"), 3, "repositry", "repository")


@pytest.mark.parametrize(
    ("var", "suggestion"),
    [
        ("RFBACKUP_POSTGRES__KEEP_MN", "RFBACKUP_POSTGRES__KEEP_MIN"),
        ("RFBACKUP_REPOSITRY", "RFBACKUP_REPOSITORY"),
        ("RFBACKUP_S3__ENDPOINT", "RFBACKUP_S3__ENDPOINT_URL"),
    ],
)
def test_unknown_environment_variable_suggests_the_right_one(
    tmp_path: Path, var: str, suggestion: str
) -> None:
    one_error_line(run(tmp_path, "list", **{var: "5"}), 3, var, suggestion)


def test_other_variables_are_not_our_business(tmp_path: Path) -> None:
    (tmp_path / "alt.toml").write_text("[postgres]\nkeep_min = 4\n")
    r = run(
        tmp_path,
        "list",
        "--json",
        RFBACKUP_CONFIG=str(tmp_path / "alt.toml"),
        RFBACKUPX="1",
        MY_RFBACKUP_THING="1",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:1",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_recipients_file_comments_with_spaces(env: Env, tmp_path: Path) -> None:
    public, identity = keypair(tmp_path)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# my key for ops\n\n{public}  \n   # indented comment, too\n")
    r = env.run(
        "backup", "postgres", "--json", RFBACKUP_ENCRYPTION__RECIPIENTS_FILE=str(recipients)
    )
    assert r.returncode == 0, r.stderr
    data = next(p for p in env.backups.iterdir() if p.name.endswith(".sql.gz.age"))
    # The standard age CLI opens it with the identity: encrypted to exactly that key.
    out = subprocess.run(
        ["age", "-d", "-i", str(identity), str(data)], capture_output=True, check=True
    )
    assert out.stdout[:2] == b"\x1f\x8b"
    assert os.path.getsize(data) > 0


def test_the_documented_example_file_is_accepted(tmp_path: Path) -> None:
    guide = Path(__file__).parent.parent / "docs" / "postgres-backups.md"
    example = guide.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    assert "[postgres]" in example and "pghost" in example
    (tmp_path / "rfbackup.toml").write_text(example)
    r = run(
        tmp_path,
        "list",
        "--json",
        "--repo",
        str(tmp_path / "repo"),
        RFBACKUP_LOG_FILE=str(tmp_path / "log"),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_unknown_key_inside_a_json_section_variable(tmp_path: Path) -> None:
    r = run(tmp_path, "list", RFBACKUP_POSTGRES='{"keep_mn": 5}')
    one_error_line(r, 3, "keep_mn")
