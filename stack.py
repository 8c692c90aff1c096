"""Brings up the embedded stack (Temporal dev server, the sandboxes, HTTP API, worker) on loopback, plays the
demo, and stops every process it started.

    python stack.py run    # stays up until Ctrl-C
    python stack.py demo   # exits 0 only if the demo's outcome was verified
"""

import argparse
import asyncio
import contextlib
import ctypes
import faulthandler
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from config.settings import Settings, get_settings
from config.temporal import connect, dev_server_command, pollers
from models.db import SchemaOutOfDate, create_tables, get_engine
from sandbox.qbo.admin import sandbox_root
from starter import play_demo


class StackError(Exception):
    """A clear, user-facing reason the stack could not come up."""


def _die_with_parent() -> None:
    """Child processes get SIGTERM if the stack process dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class Service:
    name: str
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise StackError(f"{self.name} exited with code {self.process.returncode}; log {self.log}:\n{tail}")

    def terminate(self) -> None:
        """SIGTERM the service's whole process group."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic) for the service to exit, then SIGKILL what is left of it."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Stack:
    settings: Settings
    services: list[Service] = field(default_factory=list)

    def ports(self) -> list[tuple[str, str, int]]:
        s = self.settings
        temporal = urlparse(f"//{s.temporal_address}")
        return [
            ("Temporal frontend", "LEDGERFLOW_TEMPORAL_ADDRESS", temporal.port or 7233),
            ("Temporal UI", "LEDGERFLOW_TEMPORAL_UI_PORT", s.temporal_ui_port),
            ("QBO sandbox", "LEDGERFLOW_QBO_SANDBOX_PORT", s.qbo_sandbox_port),
            ("CRM sandbox", "LEDGERFLOW_CRM_SANDBOX_PORT", s.crm_sandbox_port),
            ("Gateway sandbox", "LEDGERFLOW_GATEWAY_SANDBOX_PORT", s.gateway_sandbox_port),
            ("SMTP sandbox", "LEDGERFLOW_SMTP_PORT", s.smtp_port),
            ("SMS sandbox", "LEDGERFLOW_SMS_SANDBOX_PORT", s.sms_sandbox_port),
            ("Partners sandbox", "LEDGERFLOW_PARTNERS_SANDBOX_PORT", s.partners_sandbox_port),
            ("HTTP API", "LEDGERFLOW_API_PORT", s.api_port),
        ]

    def check_ports(self) -> None:
        busy = [f"  port {port} ({what}; change it with {env})" for what, env, port in self.ports()
                if port_in_use("127.0.0.1", port)]
        if busy:
            raise StackError("these ports are already in use: is another stack running?\n" + "\n".join(busy))

    def start(self) -> None:
        s = self.settings
        self.check_ports()
        data = s.data_dir.resolve()
        logs = data / "logs"
        temporal = urlparse(f"//{s.temporal_address}")
        python = sys.executable
        self.services = [
            Service("temporal", dev_server_command(s.temporal_cli, temporal.hostname or "127.0.0.1",
                                                   temporal.port or 7233, data / "temporal.db", s.temporal_namespace,
                                                   ui_port=s.temporal_ui_port), logs / "temporal.log"),
            Service("qbo-sandbox", [python, "-m", "sandbox.qbo", "--port", str(s.qbo_sandbox_port),
                                    "--state-file", str(data / "qbo-sandbox.sqlite")], logs / "qbo-sandbox.log"),
            Service("crm-sandbox", [python, "-m", "sandbox.crm", "serve", "--port", str(s.crm_sandbox_port),
                                    "--state-file", str(data / "crm-sandbox.json")], logs / "crm-sandbox.log"),
            Service("gateway-sandbox", [python, "-m", "sandbox.gateway", "--port", str(s.gateway_sandbox_port),
                                        "--state-file", str(data / "gateway-sandbox.json")],
                    logs / "gateway-sandbox.log"),
            Service("messaging-sandbox", [python, "-m", "sandbox.messaging", "--smtp-port", str(s.smtp_port),
                                          "--sms-port", str(s.sms_sandbox_port),
                                          "--inbound-sms-url", f"{s.api_url}/inbound/sms",
                                          "--inbound-email-url", f"{s.api_url}/inbound/email",
                                          "--capture-url", f"{s.api_url}/inbound/email-capture"],
                    logs / "messaging-sandbox.log"),
            Service("partners-sandbox", [python, "-m", "sandbox.partners", "--port", str(s.partners_sandbox_port)],
                    logs / "partners-sandbox.log"),
        ]
        try:
            create_tables(get_engine(s.database_url))  # once, before the API and the worker both look
        except SchemaOutOfDate as error:
            raise StackError(str(error)) from error
        print(f"Starting the embedded stack (logs in {logs})")
        for service in self.services:
            service.start()
        asyncio.run(self._wait_for_temporal())
        self._wait_for_http("QBO sandbox", self.services[1], f"{sandbox_root(s.qbo_api_url)}/healthz")
        self._wait_for_http("CRM sandbox", self.services[2], f"{s.crm_api_url}/healthz")
        self._wait_for_http("Gateway sandbox", self.services[3], f"{s.gateway_api_url}/healthz")
        self._wait_for_http("Messaging sandbox", self.services[4], f"{s.sms_api_url}/healthz")
        self._wait_for_http("Partners sandbox", self.services[5], f"{s.sheets_api_url}/healthz")
        api = Service("api", [python, "-m", "uvicorn", "api.app:app", "--host", s.api_host, "--port",
                              str(s.api_port), "--log-level", "warning"], logs / "api.log")
        worker = Service("worker", [python, "worker.py"], logs / "worker.log")
        self.services += [api, worker]
        api.start()
        worker.start()
        self._wait_for_http("HTTP API", api, f"{s.api_url}/healthz")
        asyncio.run(self._wait_for_worker(worker))

    async def _wait_for_temporal(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            self.services[0].check_alive()
            try:
                await connect(self.settings)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise StackError("the Temporal dev server did not come up in time") from None
                await asyncio.sleep(0.5)

    def _wait_for_http(self, what: str, service: Service, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            service.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise StackError(f"{what} did not answer at {url} in time")
            time.sleep(0.3)

    async def _wait_for_worker(self, worker: Service, within: float = 60) -> None:
        """Ready once the worker polls the task queue."""
        client = await connect(self.settings)
        deadline = time.monotonic() + within
        while True:
            worker.check_alive()
            if await pollers(client, self.settings.task_queue):
                return
            if time.monotonic() > deadline:
                raise StackError("the worker did not start polling in time")
            await asyncio.sleep(0.5)

    def stop(self, grace: float = 10.0) -> None:
        """Every service told to stop at once (the last started first), then `grace` seconds for all of them
        together: stopping one after another made Ctrl-C take a minute on a busy machine."""
        for service in reversed(self.services):
            service.terminate()
        deadline = time.monotonic() + grace
        for service in reversed(self.services):
            service.wait_stopped(deadline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["run", "demo"])
    args = parser.parse_args(argv)
    stack = Stack(get_settings())

    def _terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` prints where every thread is
    try:
        stack.start()
        verified = asyncio.run(play_demo(stack.settings))
        if args.mode == "demo":
            return 0 if verified else 1
        print(f"\nThe stack is up. Temporal UI: {stack.settings.temporal_ui_url}   API: {stack.settings.api_url}")
        print("Press Ctrl-C to stop everything.")
        while True:
            for service in stack.services:
                service.check_alive()
            time.sleep(1)
    except StackError as error:
        print(f"\nledgerflow: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        stack.stop()
        if stack.services:
            print("Every process the stack started has stopped.")


if __name__ == "__main__":
    sys.exit(main())
