"""XMPP clients for the lab tests: slixmpp (a real client library) verifying TLS against the
lab CA, and a minimal raw stream for what a client library will not do on purpose
(in-band registration before login, a server-to-server stream from a stranger).

Clients only ever connect to lab addresses (the tenant's host on the lab bridge),
never resolve a name elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slixmpp

TIMEOUT = 20.0


@dataclass
class Agent:
    jid: str
    password: str
    address: str  # lab address of the tenant's host


class Client(slixmpp.ClientXMPP):  # type: ignore[misc]
    def __init__(self, agent: Agent, ca_file: Path, resource: str = "test") -> None:
        super().__init__(f"{agent.jid}/{resource}", agent.password)
        self.agent = agent
        self.ca_certs = ca_file
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.errors: asyncio.Queue[Any] = asyncio.Queue()
        self.started = asyncio.get_event_loop().create_future()
        self.disconnects = 0
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_failed)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("groupchat_message", self._on_message)
        self.add_event_handler("message_error", self._on_message)
        self.add_event_handler("disconnected", self._on_disconnected)

    async def _on_start(self, _event: Any) -> None:
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def _on_failed(self, _event: Any) -> None:
        if not self.started.done():
            self.started.set_exception(RuntimeError(f"authentication failed for {self.agent.jid}"))

    def _on_message(self, msg: Any) -> None:
        if msg["type"] == "error":
            self.errors.put_nowait(msg)
        else:
            self.messages.put_nowait(msg)

    def _on_disconnected(self, _event: Any) -> None:
        self.disconnects += 1
        if not self.started.done():
            self.started.set_exception(RuntimeError(f"disconnected before session start: {self.agent.jid}"))

    async def start(self) -> Client:
        self.connect(self.agent.address, 5222)
        await asyncio.wait_for(self.started, TIMEOUT)
        return self

    async def next_message(self, body: str | None = None) -> Any:
        while True:
            msg = await asyncio.wait_for(self.messages.get(), TIMEOUT)
            if body is None or msg["body"] == body:
                return msg

    async def join(self, room: str, nick: str) -> None:
        """Enter a group-chat room (created on first entry) and wait for the room's own answer."""
        joined = asyncio.get_event_loop().create_future()

        def on_presence(presence: Any) -> None:
            if str(presence["from"]) == f"{room}/{nick}" and not joined.done():
                joined.set_result(presence)

        # slixmpp reports room presences under one event or the other depending on its roster state.
        for event in ("presence", "groupchat_presence"):
            self.add_event_handler(event, on_presence)
        self.plugin["xep_0045"].join_muc(room, nick)
        try:
            presence = await asyncio.wait_for(joined, TIMEOUT)
        finally:
            for event in ("presence", "groupchat_presence"):
                self.del_event_handler(event, on_presence)
        if presence["type"] == "error":
            raise RuntimeError(f"cannot join {room}: {presence['error']['condition']}")

    async def stop(self) -> None:
        self.disconnect()
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- raw streams


@dataclass
class RawStream:
    """A bare XMPP stream over TCP (then TLS), reading until an expected pattern."""

    address: str
    port: int
    sock: Any = None
    buffer: str = field(default="")

    def __enter__(self) -> RawStream:
        self.sock = socket.create_connection((self.address, self.port), timeout=TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read_until(self, pattern: str) -> str:
        """Read until `pattern` (regex) matches or the stream closes; the text read so far."""
        while not re.search(pattern, self.buffer, re.S):
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            self.buffer += chunk.decode(errors="replace")
        return self.buffer

    def starttls(self, server_name: str, ca_file: Path) -> None:
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert "<proceed" in self.read_until(r"<proceed|<failure")
        context = ssl.create_default_context(cafile=str(ca_file))
        self.sock = context.wrap_socket(self.sock, server_hostname=server_name)
        self.buffer = ""


def open_client_stream(to: str) -> str:
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>")


def open_server_stream(from_: str, to: str) -> str:
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' "
            f"from='{from_}' to='{to}' version='1.0'>")
