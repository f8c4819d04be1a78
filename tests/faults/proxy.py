"""A small threaded TCP proxy in front of PostgreSQL, for fault-injection tests.

It listens on a free port of 127.0.0.1 and forwards every connection to the real server. On command
it cuts connections the way a network failure or a server restart does:

* :meth:`PgProxy.drop_all` closes every open connection now;
* :meth:`PgProxy.drop_on_client` closes the connection whose next client message contains a byte
  pattern (e.g. ``b"INSERT INTO driftline.results"``), without forwarding that message;
* :meth:`PgProxy.drop_after_server_bytes` lets ``n`` more bytes of the server's answer through
  after a client message containing a pattern, then closes the connection (a cut mid-result-set);
* :meth:`PgProxy.start_outage` / :meth:`PgProxy.end_outage` cut everything and refuse new
  connections in between (the server down for a while). It forwards any TCP service (PostgreSQL or
  the Prefect API's HTTP and websockets).

Everything is bounded: sockets poll with short timeouts, threads are daemons that :meth:`stop` joins
with a deadline, and at most ``max_connections`` connections are served at once. Traffic only goes to
the upstream address given (127.0.0.1 by default). Use ``sslmode=disable`` on the client (see
:meth:`url_for`) so the patterns are visible in the stream.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import sqlalchemy as sa

POLL_S = 0.1
CHUNK = 65536
TAIL = 512  # bytes of a connection's previous client chunk kept, so a pattern may straddle two reads


@dataclass
class _Rule:
    pattern: bytes
    times: int
    server_bytes: int | None  # None: drop at the client message; else let this many server bytes through


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    countdown: int | None = None  # server bytes still allowed before the cut
    tail: bytes = b""
    closed: threading.Event = field(default_factory=threading.Event)


class PgProxy:
    """A fault-injecting TCP proxy; a context manager (``with PgProxy() as proxy: ...``)."""

    def __init__(
        self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432, *, max_connections: int = 64
    ) -> None:
        if upstream_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to the local machine")
        self.upstream = (upstream_host, upstream_port)
        self.max_connections = max_connections
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._rules: list[_Rule] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        #: How many connections were cut by a rule or drop_all, and which patterns fired.
        self.dropped = 0
        self.fired: list[bytes] = []
        self.accepted = 0
        #: Set during an outage: new connections are closed at once, like a port nobody listens on.
        self.refusing = threading.Event()
        self.refused = 0

    # --- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def for_url(cls, url: str) -> PgProxy:
        parsed = sa.make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432)

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() the proxy first"
        return int(self._listener.getsockname()[1])

    def url_for(self, url: str) -> str:
        """``url`` with host and port pointing at this proxy, TLS and GSS encryption off."""
        parsed = sa.make_url(url)
        query = dict(parsed.query) | {"sslmode": "disable", "gssencmode": "disable"}
        return parsed.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    def start(self) -> PgProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(POLL_S)
        self._listener = listener
        self._spawn(self._accept_loop, "pgproxy-accept")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut every connection, join the threads (bounded by ``timeout``)."""
        self._stopping.set()
        self.drop_all(count=False)
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- faults ----------------------------------------------------------------------------------
    def drop_all(self, count: bool = True) -> int:
        """Cut every open connection (what a server restart does to a client's pool)."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._close(pair, counted=count)
        return len(pairs)

    def drop_on_client(self, pattern: bytes, times: int = 1) -> None:
        """Cut the connection carrying the next ``times`` client messages that contain ``pattern``."""
        with self._lock:
            self._rules.append(_Rule(pattern, times, None))

    def drop_after_server_bytes(self, n: int, after_client: bytes = b"", times: int = 1) -> None:
        """After a client message containing ``after_client`` (any message when empty), let ``n`` bytes
        of the server's answer through on that connection, then cut it. Applies ``times`` times."""
        with self._lock:
            self._rules.append(_Rule(after_client, times, n))

    def start_outage(self) -> int:
        """The server is gone: cut every open connection and refuse new ones until :meth:`end_outage`."""
        self.refusing.set()
        return self.drop_all()

    def end_outage(self) -> None:
        self.refusing.clear()

    def clear(self) -> None:
        """Disarm every pending rule."""
        with self._lock:
            self._rules.clear()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    @property
    def armed(self) -> int:
        with self._lock:
            return sum(r.times for r in self._rules)

    # --- internals -------------------------------------------------------------------------------
    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing.is_set():
                self.refused += 1
                client.close()
                continue
            with self._lock:
                full = len(self._pairs) >= self.max_connections
            if full:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.accepted += 1
            self._spawn(self._pump, "pgproxy-pump", pair)

    def _match(self, pair: _Pair, chunk: bytes) -> _Rule | None:
        window = pair.tail + chunk
        pair.tail = window[-TAIL:]
        with self._lock:
            for rule in self._rules:
                if rule.pattern in window:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    self.fired.append(rule.pattern)
                    return rule
        return None

    def _pump(self, pair: _Pair) -> None:
        """Shuttle bytes both ways until either side closes or a fault cuts the connection."""
        sockets = [pair.client, pair.upstream]
        try:
            while not pair.closed.is_set() and not self._stopping.is_set():
                try:
                    readable, _, _ = select.select(sockets, [], [], POLL_S)
                except (OSError, ValueError):
                    break
                for source in readable:
                    data = source.recv(CHUNK)
                    if not data:
                        raise ConnectionError("peer closed")
                    if source is pair.client:
                        rule = self._match(pair, data)
                        if rule is not None and rule.server_bytes is None:
                            raise _Cut
                        if rule is not None:
                            pair.countdown = rule.server_bytes
                        pair.upstream.sendall(data)
                    else:
                        if pair.countdown is not None:
                            if len(data) >= pair.countdown:
                                pair.client.sendall(data[: pair.countdown])
                                raise _Cut
                            pair.countdown -= len(data)
                        pair.client.sendall(data)
        except _Cut:
            self._close(pair, counted=True)
            return
        except OSError:
            pass
        self._close(pair, counted=False)

    def _close(self, pair: _Pair, counted: bool) -> None:
        with self._lock:
            if pair.closed.is_set():
                return
            pair.closed.set()
            if pair in self._pairs:
                self._pairs.remove(pair)
            if counted:
                self.dropped += 1
        for sock in (pair.client, pair.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class _Cut(Exception):
    """Raised inside a pump to cut its connection."""
