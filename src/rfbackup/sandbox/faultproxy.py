"""A fault-injecting HTTP proxy in front of a real S3 server (SeaweedFS), for tests.

Clients point their S3 endpoint at :attr:`FaultProxy.endpoint`. Requests pass through
unchanged (the ``Host`` header too, so SigV4 signatures stay valid) unless a rule matches
the method and the path (``/bucket/key``), in which case the proxy answers with an S3 error
(``status=403``, ``503``...), resets the connection, cuts the answer short after ``truncate``
bytes of its body (headers still announcing the full length), or delays the request first. Rules can
be added and cleared while clients run; each counts its hits, so a test can prove that its
fault really happened.

    with FaultProxy(s3.endpoint) as proxy:
        rule = proxy.add("GET", r"\\.manifest\\.json$", status=403)
        ...  # run the client against proxy.endpoint
        assert rule.hits > 0
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote, urlsplit

_CODES = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError", 503: "SlowDown"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    method: str  # "GET", "PUT"... or "*"
    pattern: re.Pattern[str]  # searched in the decoded path, e.g. /bucket/prefix/key
    status: int | None = None  # answer this HTTP status with an S3 error body
    reset: bool = False  # close the connection with a TCP reset, no answer
    delay: float = 0.0  # seconds to wait before acting (or forwarding)
    truncate: int | None = None  # forward, but send only this many body bytes, then reset
    times: int | None = None  # stop matching after this many hits (None: forever)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return self.method in ("*", method) and self.pattern.search(path) is not None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, outcome) of every request
        self._lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(
        self,
        method: str,
        pattern: str,
        *,
        status: int | None = None,
        reset: bool = False,
        delay: float = 0.0,
        truncate: int | None = None,
        times: int | None = None,
    ) -> Rule:
        rule = Rule(method.upper(), re.compile(pattern), status, reset, delay, truncate, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the proxy's own log list is what tests read

    def _any(self) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._read_body()
        rule = self.owner._match(self.command, path)
        outcome = "forwarded"
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and rule.reset:
            self.owner.log.append((self.command, path, "reset"))
            self._reset()
            return
        if rule is not None and rule.status is not None:
            outcome = str(rule.status)
            self._error(rule.status)
        elif rule is not None and rule.truncate is not None:
            outcome = f"truncated to {rule.truncate} bytes"
            self._forward(body, rule.truncate)
            self._reset()
        else:
            self._forward(body)
        self.owner.log.append((self.command, path, outcome))

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        trailer = self.rfile.readline()
                        raw += trailer
                        if trailer in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _error(self, status: int) -> None:
        code = _CODES.get(status, "InternalError")
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by the fault proxy</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, body: bytes, truncate: int | None = None) -> None:
        conn = http.client.HTTPConnection(
            self.owner.upstream_host, self.owner.upstream_port, timeout=120
        )
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("connection", "proxy-connection", "keep-alive"):
                    conn.putheader(name, value)
            conn.endheaders()
            if body:
                conn.send(body)  # chunked bodies are passed on with their framing intact
            resp = conn.getresponse()
            data = resp.read()
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = resp.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data if truncate is None else data[:truncate])
                self.wfile.flush()
        finally:
            conn.close()
