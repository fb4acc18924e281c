"""Socket Mode: keeps this process's WebSocket connection to Slack open and feeds its envelopes to Bolt.

Bolt's ``SocketModeHandler`` does the protocol: each envelope goes to the same listeners HTTP mode
uses, and (with ``process_before_response=True``) the listener's ``ack`` payload is sent as the
envelope's acknowledgement, so a command's immediate reply is the same in both modes. slack_sdk's
built-in client follows Slack's ``disconnect`` messages by itself (a new ``apps.connections.open``);
what this module adds is reconnecting with backoff when a connection drops or cannot be opened.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.slack.app import withhold_bodies
from bot.slack.payloads import MalformedPayload, check_payload
from workers.kernel.secrets import Secret

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
POLL_INTERVAL = 0.5
PING_INTERVAL = 5.0
"""The client pings this often and drops a connection silent for four intervals (20 s)."""


class SocketModeConnection:
    """One Socket Mode connection, reconnected until :meth:`run`'s stop event is set."""

    def __init__(self, app: App, app_token: Secret, api_url: str, *, ping_interval: float = PING_INTERVAL,
                 max_delay: float = MAX_DELAY) -> None:
        withhold_bodies("slack_sdk.socket_mode")  # envelopes hold what people typed
        self._handler = SocketModeHandler(
            app,
            app_token=app_token.reveal(),
            # apps.connections.open is a Web API method like any other: it goes to SLACK_API_URL.
            web_client=WebClient(base_url=api_url, timeout=10),
            logger=logging.getLogger("slack_sdk.socket_mode"),
            # The client's own reconnects retry at a fixed pace and only from its ping timer; ours back off.
            auto_reconnect_enabled=False,
            ping_interval=ping_interval,
        )
        self._max_delay = max_delay
        client = self._handler.client
        # Envelopes come over the connection regops opened, but their payloads get the HTTP edge's
        # shape checks all the same: Bolt raises (and logs a traceback) on a malformed one.
        client.run_message_listeners = _checked(client, client.run_message_listeners)  # type: ignore[method-assign,assignment]
        client.process_message = _tolerant(client, client.process_message)  # type: ignore[method-assign]

    def connected(self) -> bool:
        return self._handler.client.is_connected()

    def run(self, stop: threading.Event) -> None:
        """Connect, and reconnect whenever the connection is gone; close it once ``stop`` is set."""
        delay = FIRST_DELAY
        was_connected = False
        try:
            while not stop.is_set():
                self._drop_if_broken()
                if self.connected():
                    if not was_connected:
                        log.info("socket mode: connected")
                    was_connected, delay = True, FIRST_DELAY
                    stop.wait(POLL_INTERVAL)
                    continue
                if was_connected:
                    log.warning("socket mode: connection lost; reconnecting")
                    was_connected = False
                self._connect_once(delay)
                if not self.connected():
                    # Jitter keeps the processes of a fleet from reconnecting in lockstep after an outage.
                    stop.wait(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self._max_delay)
        finally:
            self.close()

    def _drop_if_broken(self) -> None:
        session = self._handler.client.current_session
        # The client gives up on a socket only after five failed pings (25 s), spinning on its dead
        # socket meanwhile; one failed ping (a broken pipe: the peer is gone) is reason enough.
        if session is not None and session.is_active() and session.consecutive_check_state_error_count > 0:
            log.warning("socket mode: a ping failed; dropping the connection")
            session.disconnect()

    def _connect_once(self, delay: float) -> None:
        try:
            # Opens a new URL with apps.connections.open unless another thread has just connected.
            self._handler.client.connect_to_new_endpoint()
        except SlackApiError as exc:
            log.warning("socket mode: apps.connections.open failed (%s); retrying in about %.1f s",
                        exc.response.get("error"), delay)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried, never fatal to serve
            log.warning("socket mode: cannot connect (%s: %s); retrying in about %.1f s",
                        type(exc).__name__, exc, delay)

    def close(self) -> None:
        try:
            self._handler.close()
        except Exception:  # closing at shutdown must not mask why we are shutting down
            log.debug("socket mode: error while closing", exc_info=True)


def _checked(client: BaseSocketModeClient, run: Callable[[dict, str], None]) -> Callable[[dict, str], None]:
    """The client's dispatch of one message, for well-formed envelopes only: a malformed one is
    acknowledged empty (so Slack does not send it again), logged by its type and the field at fault
    (never a value), and goes no further — slack_sdk and Bolt would raise on it and log a traceback."""

    def run_checked(message: dict, raw_message: str) -> None:
        if isinstance(message, dict) and "envelope_id" in message and "payload" in message:
            try:
                payload = message["payload"]
                if not isinstance(payload, dict):
                    raise MalformedPayload("the payload must be an object")
                check_payload(payload)
            except MalformedPayload as exc:
                log.warning("socket mode: a malformed %s envelope was acknowledged and dropped (%s)",
                            str(message.get("type"))[:40], exc)
                if isinstance(message["envelope_id"], str):
                    client.send_socket_mode_response(SocketModeResponse(envelope_id=message["envelope_id"]))
                return
        run(message, raw_message)

    return run_checked


def _tolerant(client: BaseSocketModeClient, process_message: Callable[[], None]) -> Callable[[], None]:
    """The client's message loop step, with a message that is not JSON dropped with a warning
    (slack_sdk would log a traceback at ERROR for it)."""

    def step() -> None:
        try:
            process_message()
        except json.JSONDecodeError:  # the frame started with "{" and was not JSON
            log.warning("socket mode: a message that is not JSON was dropped")

    return step
