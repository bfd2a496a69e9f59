"""What a bucket reader learns (object sizes and counts only) and what each key holder can do:
the backup job (recipients + writer key) writes but reads nothing."""

from __future__ import annotations

from pathlib import Path

from artifacts_support import keypair, make_repo, write

from rfbackup.sandbox.seaweedfs import ThrowawayS3

SECRET_NAME = "patient-cohort-secret"
SECRET_TEXT = b"TOP-SECRET-RESEARCH-RESULT " * 500  # compressible: would show up if unencrypted


def test_bucket_reveals_no_names_or_content(tmp_path: Path, s3: ThrowawayS3) -> None:
    repo = make_repo(tmp_path, s3)
    src = tmp_path / "vol"
    write(src / SECRET_NAME / "results.csv", SECRET_TEXT)
    write(src / "other" / f"{SECRET_NAME}.txt", b"small secret " + SECRET_NAME.encode())
    snap = repo.backup(src)
    objects = repo.objects()
    assert objects, "nothing stored"
    for key in objects:
        assert SECRET_NAME not in key and "vol" not in key and "results" not in key
        blob = repo.read(key)
        for needle in (
            SECRET_NAME.encode(),
            b"TOP-SECRET",
            b"results.csv",
            b"vol",
            snap["root"].encode(),
        ):
            assert needle not in blob, (key, needle)
    # the writer key file holds no age identity
    assert b"AGE-SECRET-KEY" not in (tmp_path / "writer.key").read_bytes()


def test_backup_job_cannot_read_and_wrong_identity_is_clear(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    snap = repo.backup(src)["id"]

    # the backup job's own environment: recipients and writer key, no identity
    for args in (("artifacts", "list"), ("restore", "artifacts", snap, str(tmp_path / "x"))):
        r = repo.run(*args, side="writer")
        assert r.returncode == 3, r.stderr
        assert "IDENTITY_FILE" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()

    _, stranger = keypair(tmp_path, "stranger.txt")
    r = repo.run("restore", "artifacts", snap, str(tmp_path / "y"),
                 RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(stranger))  # fmt: skip
    assert r.returncode == 3 and "identity opens no key" in r.stderr, r.stderr
    assert not (tmp_path / "y").exists()

    r = repo.run("artifacts", "list", RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(tmp_path / "missing"))
    assert r.returncode == 3 and "cannot read age identity file" in r.stderr, r.stderr

    # a writer key of another repository is refused before anything is written
    (tmp_path / "second").mkdir()
    other_key = make_repo(tmp_path / "second").writer["RFBACKUP_ARTIFACTS__KEY_FILE"]
    r = repo.run(
        "backup", "artifacts", str(src), side="writer", RFBACKUP_ARTIFACTS__KEY_FILE=other_key
    )
    assert r.returncode == 3 and "does not belong" in r.stderr, r.stderr
