"""Serve an ASGI app (a sandbox, the API) on loopback from a background thread, for tests and benchmarks."""

import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    return free_ports(1)[0]


_PICKER = random.Random()  # its own: choosing ports must not move a seeded test's random sequence


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (Linux's ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, below the kernel's ephemeral range: a port from that range, free when
    chosen, may be taken by any process's outgoing connection before the server binds it (seen with tests
    running in parallel). Held open together while chosen, so they are distinct."""
    low = _ephemeral_low()
    candidates = _PICKER.sample(range(10_000, low), min(low - 10_000, 64 * count)) if low > 10_000 + count else []
    probes: list[socket.socket] = []
    try:
        for port in candidates:
            if len(probes) == count:
                break
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            probes.append(probe)
        while len(probes) < count:  # no room below the range: any port the kernel gives
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class ServerThread:
    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
