"""Connections to a Redis instance: redis-py clients for commands, raw sockets for SYNC.

Every failure becomes one line naming the instance (never the password).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rfbackup.errors import SourceError
from rfbackup.sources.redis.target import RedisTarget

CONNECT_TIMEOUT = 10.0


def client(target: RedisTarget, db: int = 0, timeout: float | None = 60.0) -> Any:
    """A redis-py client (bytes in, bytes out) for ``target``'s database ``db``."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host=target.host,
        port=target.port,
        db=db,
        username=target.username,
        password=target.password.get_secret_value() if target.password else None,
        ssl=target.tls,
        ssl_ca_certs=str(target.tls_ca_file) if target.tls_ca_file else None,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # fail at once: no hidden retries with backoff
    )


@contextmanager
def one_line_errors(target: RedisTarget, doing: str) -> Iterator[None]:
    """Turn redis-py's and the socket's exceptions into a one-line :class:`SourceError`
    (redis-py is imported only when there is one to classify)."""
    try:
        yield
    except SourceError:
        raise
    except OSError as exc:  # the socket's, and redis-py's ConnectionError/TimeoutError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"redis {target.display}: {doing} failed: {first}") from None
    except Exception as exc:
        import redis

        if isinstance(exc, redis.AuthenticationError):
            raise SourceError(f"redis {target.display}: authentication failed ({exc})") from None
        if isinstance(exc, redis.ResponseError):
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if msg.startswith(("NOAUTH", "WRONGPASS")):
                raise SourceError(
                    f"redis {target.display}: authentication failed ({msg})"
                ) from None
            raise SourceError(f"redis {target.display}: {doing} failed: {msg}") from None
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceError(f"redis {target.display}: {doing} failed: {first}") from None
        raise


def info(target: RedisTarget, *sections: str) -> dict[str, Any]:
    """``INFO`` of the given sections, merged into one dict, over a raw socket (the backup
    path stays clear of redis-py, whose import alone costs ~0.4 s of CPU). Numbers come
    back as int or float, ``dbN`` lines as dicts, versions as strings."""
    from rfbackup.sources.redis.resp import RespPipe

    with one_line_errors(target, "INFO"):
        pipe = RespPipe(target, timeout=60.0)
        try:
            replies = pipe.run([[b"INFO", s.encode()] for s in sections])
        finally:
            pipe.close()
    out: dict[str, Any] = {}
    for reply in replies:
        if isinstance(reply, pipe.error_type):
            msg = str(reply)
            if msg.startswith(("NOAUTH", "WRONGPASS")):
                raise SourceError(f"redis {target.display}: authentication failed ({msg})")
            raise SourceError(f"redis {target.display}: INFO failed: {msg}")
        out.update(parse_info(reply))
    return out


def parse_info(text: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.decode(errors="replace").splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("db") and key[2:].isdigit():
            out[key] = {k: _number(v) for k, _, v in (x.partition("=") for x in value.split(","))}
        else:
            out[key] = value if key.endswith("_version") else _number(value)
    return out


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def keyspace(info_dict: dict[str, Any]) -> dict[int, int]:
    """``{db: keys}`` from an INFO dict that holds the keyspace section."""
    out: dict[int, int] = {}
    for key, value in info_dict.items():
        if key.startswith("db") and key[2:].isdigit() and isinstance(value, dict):
            out[int(key[2:])] = int(value.get("keys", 0))
    return out


def open_socket(target: RedisTarget, timeout: float) -> socket.socket:
    """A connected (TLS when rediss://) and authenticated raw socket."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        if target.tls:
            ctx = ssl.create_default_context(cafile=target.tls_ca_file)
            sock = ctx.wrap_socket(sock, server_hostname=target.host)
        sock.settimeout(timeout)
    except OSError as exc:
        raise SourceError(f"redis {target.display}: cannot connect: {exc}") from None
    if target.password is not None and target.password.get_secret_value():
        args = [b"AUTH"]
        if target.username:
            args.append(target.username.encode())
        args.append(target.password.get_secret_value().encode())
        send_command(sock, *args)
        reply = read_line(sock)
        if not reply.startswith(b"+OK"):
            sock.close()
            msg = reply.decode(errors="replace").lstrip("-")
            raise SourceError(f"redis {target.display}: authentication failed ({msg})")
    return sock


def send_command(sock: socket.socket, *args: bytes) -> None:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    sock.sendall(b"".join(out))


def read_line(sock: socket.socket, skip_newlines: bool = False) -> bytes:
    """One reply line without its CRLF, read a byte at a time so that nothing after it is
    consumed. ``skip_newlines``: ignore the bare ``\\n`` keepalives a master sends while it
    prepares the RDB (as redis-cli's ``sendSync`` does)."""
    buf = bytearray()
    while True:
        b = sock.recv(1)
        if not b:
            raise ConnectionError("connection closed by the server")
        if b == b"\n":
            if buf or not skip_newlines:
                return bytes(buf).rstrip(b"\r")
            continue
        buf += b
        if len(buf) > 65536:
            raise ConnectionError("reply line too long")
