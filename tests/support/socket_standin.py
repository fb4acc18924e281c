"""A local stand-in for Slack's Socket Mode WebSocket: says ``hello``, hands envelopes to the open
connections (each envelope to one of them), records their acknowledgements, and asks for refreshes.

The URLs it issues come from the Web API stand-in's ``apps.connections.open``
(:class:`tests.support.slack_standin.SlackStandIn` with ``app_token`` and ``socket`` set).
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.support.slack_standin import wait_on


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    connection: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Delivery:
    envelope_id: str
    connection: int
    at: float = field(default_factory=time.monotonic)


class SocketModeStandIn:
    """``with SocketModeStandIn() as socket:`` — ``socket.issue_url()`` is what apps.connections.open returns."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._tickets = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._round_robin = itertools.count()
        self.issued: list[str] = []
        self.open: dict[int, ServerConnection] = {}
        self.opened: list[int] = []  # every connection ever accepted, in order
        self.acks: dict[str, Ack] = {}
        self.deliveries: dict[str, Delivery] = {}
        self.unknown: list[str] = []  # messages from the bot that were not acknowledgements
        self._server: Server = serve(self._handle, "127.0.0.1", 0, compression=None,
                                     logger=logging.getLogger("socket-standin"))
        self._thread = threading.Thread(target=self._server.serve_forever, name="socket-standin", daemon=True)

    # ---- lifecycle ----
    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        with self._lock:
            connections = list(self.open.values())
        for connection in connections:
            connection.close()
        self._server.shutdown()
        self._thread.join(10)

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def issue_url(self) -> str:
        """A fresh connection URL, as apps.connections.open gives one per call."""
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._tickets)}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self.issued.append(url)
        return url

    # ---- driving the bot ----
    def send(self, kind: str, payload: dict[str, Any], *, connection: int | None = None) -> str:
        """Deliver an envelope (``slash_commands`` or ``interactive``) to one open connection; its id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": True,
                    "payload": payload}
        target, conn_id = self._pick(connection)
        with self._lock:
            self.deliveries[envelope_id] = Delivery(envelope_id, conn_id)
        target.send(json.dumps(envelope))
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested", *, connection: int | None = None) -> int:
        """Ask one connection (the oldest open one by default) to reconnect; the connection asked."""
        target, conn_id = self._pick(connection, oldest=True)
        target.send(json.dumps({"type": "disconnect", "reason": reason,
                                "debug_info": {"host": "standin"}}))
        return conn_id

    def drop(self, connection: int | None = None, *, abrupt: bool = False) -> int:
        """Close one connection from the server side: with a close frame, as a Slack restart would, or
        ``abrupt``-ly (TCP closed, no close frame), as a lost load balancer would."""
        target, conn_id = self._pick(connection, oldest=True)
        if abrupt:
            target.socket.shutdown(socket.SHUT_RDWR)
            target.socket.close()
        else:
            target.close(code=1001, reason="going away")
        return conn_id

    # ---- inspection ----
    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        return self.wait_for(lambda: self.acks.get(envelope_id), timeout, f"the ack of envelope {envelope_id}")

    def wait_connections(self, count: int, timeout: float = 30.0) -> list[int]:
        """Wait until at least ``count`` connections are open; their ids."""
        return self.wait_for(lambda: sorted(self.open) if len(self.open) >= count else None, timeout,
                             f"{count} open connection(s)")

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        return wait_on(self._lock, predicate, timeout, lambda: (
            f"Socket Mode stand-in: timed out waiting for {what}; open connections: "
            f"{sorted(self.open)}, acks: {len(self.acks)}"))

    # ---- the server ----
    def _pick(self, connection: int | None, *, oldest: bool = False) -> tuple[ServerConnection, int]:
        with self._lock:
            if not self.open:
                raise AssertionError("Socket Mode stand-in: no open connection")
            if connection is not None:
                return self.open[connection], connection
            ids = sorted(self.open)
            conn_id = ids[0] if oldest else ids[next(self._round_robin) % len(ids)]
            return self.open[conn_id], conn_id

    def _handle(self, connection: ServerConnection) -> None:
        conn_id = next(self._connection_ids)
        connection.send(json.dumps({"type": "hello", "num_connections": 1,
                                    "debug_info": {"host": "standin", "approximate_connection_time": 18060},
                                    "connection_info": {"app_id": "A0REGOPS"}}))
        with self._lock:
            self.open[conn_id] = connection
            self.opened.append(conn_id)
            self._lock.notify_all()
        try:
            for raw in connection:
                self._receive(conn_id, raw if isinstance(raw, str) else raw.decode())
        except ConnectionClosed:
            pass  # the bot went away without a close frame (a refresh replaces the socket outright)
        finally:
            with self._lock:
                self.open.pop(conn_id, None)
                self._lock.notify_all()

    def _receive(self, conn_id: int, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        with self._lock:
            if isinstance(message, dict) and "envelope_id" in message:
                envelope_id = str(message["envelope_id"])
                # Slack keeps the first acknowledgement; a second one is a bug worth seeing in a test.
                if envelope_id in self.acks:
                    self.unknown.append(raw)
                else:
                    self.acks[envelope_id] = Ack(envelope_id, message.get("payload"), conn_id)
            else:
                self.unknown.append(raw)
            self._lock.notify_all()
