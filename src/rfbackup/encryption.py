"""Client-side encryption in the age format (pyrage), as a stream stage.

Backups are encrypted to X25519 recipients (public keys, ``age1...``), so the backup host
never holds a private key. Restores read an identity file (``AGE-SECRET-KEY-1...``, as made
by ``age-keygen``). Files are standard age: ``age -d -i key.txt FILE`` opens them.

pyrage encrypts from a readable to a writable, so each stage runs it on a thread fed
through a pipe. The first error on either side is kept and raised to the caller.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pyrage

from rfbackup import interrupts
from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.pipeline import Sink

SUFFIX = ".age"


def parse_recipients(keys: list[str]) -> list[Any]:
    out = []
    for key in keys:
        key = key.strip()
        if not key or key.startswith("#"):
            continue
        try:
            out.append(pyrage.x25519.Recipient.from_str(key))
        except Exception:
            raise ConfigError(f"invalid age recipient {key[:12]}...: expected age1...") from None
    return out


def load_identities(path: Path) -> list[Any]:
    from rfbackup.signing import warn_if_shared

    warn_if_shared(path, "age identity file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read age identity file {path}: {exc.strerror}") from None
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                ids.append(pyrage.x25519.Identity.from_str(line))
            except Exception:
                raise ConfigError(f"{path} holds an invalid age identity") from None
    if not ids:
        raise ConfigError(f"{path} holds no age identity (AGE-SECRET-KEY-1...)")
    return ids


class _Guarded:
    """Forwards writes, remembering the first exception (pyrage would hide its type)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.inner.write(data)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        pass


class Encryptor:
    """A Sink: bytes written here reach ``sink`` age-encrypted."""

    def __init__(self, sink: Sink, recipients: list[Any]) -> None:
        self._out = _Guarded(sink)
        r, w = os.pipe()
        self._reader = os.fdopen(r, "rb")
        self._writer = os.fdopen(w, "wb")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(recipients,), daemon=True)
        self._thread.start()

    def _run(self, recipients: list[Any]) -> None:
        interrupts.leave_to_main_thread()
        try:
            pyrage.encrypt_io(self._reader, self._out, recipients)
        except BaseException as exc:
            self._error = self._out.error or exc
        finally:
            self._reader.close()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            self._writer.write(data)
        except (BrokenPipeError, ValueError):
            self._thread.join()
            raise self._error or IntegrityError("encryption stopped unexpectedly") from None
        return len(data)

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._writer.close()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """End the stream; whatever the thread still writes goes to a writer being aborted."""
        with contextlib.suppress(OSError):
            self._writer.close()
        self._thread.join(timeout=30)


class Decryptor(io.RawIOBase):
    """The plaintext of an age stream ``raw``, readable. A wrong key raises ConfigError."""

    def __init__(self, raw: Any, identities: list[Any], where: str) -> None:
        super().__init__()
        self.where = where
        r, w = os.pipe()
        self._reader = os.fdopen(r, "rb")
        self._writer = os.fdopen(w, "wb")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(raw, identities), daemon=True)
        self._thread.start()

    def _run(self, raw: Any, identities: list[Any]) -> None:
        interrupts.leave_to_main_thread()
        try:
            pyrage.decrypt_io(raw, self._writer, identities)
        except BaseException as exc:
            self._error = exc
        finally:
            with contextlib.suppress(OSError):
                self._writer.close()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._reader.readinto(b)
        if not n:
            self._thread.join()
            self._raise()
        return n or 0

    def _raise(self) -> None:
        exc = self._error
        if exc is None or isinstance(exc, BrokenPipeError):
            return  # finished, or the reader stopped early on purpose
        text = str(exc)
        if "no matching keys" in text.lower() or "NoMatchingKeys" in text:
            raise ConfigError(f"{self.where}: the age identity does not match this backup's keys")
        raise IntegrityError(f"{self.where}: cannot decrypt ({text})")

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
            self._thread.join(timeout=30)
        super().close()


def decrypted(raw: Any, identities: list[Any], where: str) -> io.BufferedReader:
    return io.BufferedReader(Decryptor(raw, identities, where), 1024 * 1024)
