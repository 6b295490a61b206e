"""A WebSocket whose reading can stop at the TCP level, and the kernel's view of it."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

TCP_STATES = {
    "01": "ESTABLISHED",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "0B": "CLOSING",
}


class RawSocket:
    """Just enough RFC 6455 to read frames and then stop reading at the TCP level."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local_port = writer.get_extra_info("sockname")[1]

    @classmethod
    async def connect(cls, port: int, path: str, cookie: str, origin: str) -> RawSocket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        size = len(payload)
        head = (
            struct.pack("!BB", 0x81, 0x80 | size)
            if size < 126
            else struct.pack("!BBH", 0x81, 0x80 | 126, size)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def read_text(self) -> str:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(size)
        if first & 0x0F != 0x1:
            return await self.read_text()  # a ping or pong: not a message
        return payload.decode()

    def pause(self) -> None:
        self.writer.transport.pause_reading()


def tcp_state(server_port: int, client_port: int) -> tuple[str, int, int]:
    """The daphne side of the connection: state, bytes in its send queue, in our receive queue."""
    server, client_rx = ("GONE", 0), 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            parts = line.split()
            local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
            tx, rx = (int(v, 16) for v in parts[4].split(":"))
            if (local, remote) == (server_port, client_port):
                server = (TCP_STATES.get(parts[3], parts[3]), tx)
            elif (local, remote) == (client_port, server_port):
                client_rx = rx
    return server[0], server[1], client_rx
