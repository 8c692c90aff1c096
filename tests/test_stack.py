"""`make run` / `make demo` on the embedded stack: it comes up, the demo verifies, and stopping it (Ctrl-C or
the end of the demo) leaves no process behind. Each test runs its own stack on free ports."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.serve import free_ports

ROOT = Path(__file__).parent.parent


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    names = ["TEMPORAL_UI_PORT", "QBO_SANDBOX_PORT", "CRM_SANDBOX_PORT", "GATEWAY_SANDBOX_PORT", "SMTP_PORT",
             "SMS_SANDBOX_PORT", "PARTNERS_SANDBOX_PORT", "API_PORT"]
    temporal, *ports = free_ports(len(names) + 1)
    env.update({
        "LEDGERFLOW_DATA_DIR": str(data_dir),
        "LEDGERFLOW_DATABASE_URL": f"sqlite:///{data_dir / 'ledgerflow.db'}",
        "LEDGERFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        **{f"LEDGERFLOW_{name}": str(port) for name, port in zip(names, ports, strict=True)},
    })
    return env


def processes_of(data_dir: Path) -> list[int]:
    """Processes whose environment names this stack's data directory: everything the stack started."""
    marker = f"LEDGERFLOW_DATA_DIR={data_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def wait_gone(data_dir: Path, within: float = 15) -> list[str]:
    """What is still running of the stack after `within` seconds, as command lines."""
    deadline = time.monotonic() + within
    while (left := processes_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = []
    for pid in left:
        try:
            lines.append(f"{pid}: " + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines


def as_from_a_terminal() -> None:
    """SIGINT delivered and acted on, as a shell leaves it for a program it starts: a pytest-xdist worker may run
    tests with SIGINT blocked, and a blocked signal stays blocked across exec (seen: make and the stack slept
    through Ctrl-C)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stuck(process: subprocess.Popen[str], data_dir: Path) -> str:
    """What a stack that will not stop is doing: every thread of stack.py (it dumps them on SIGUSR1), what is
    still running; then everything killed."""
    running = wait_gone(data_dir, within=0)
    for line in running:
        if "stack.py" in line:
            os.kill(int(line.split(":")[0]), signal.SIGUSR1)
    time.sleep(2)
    os.killpg(process.pid, signal.SIGKILL)
    for pid in processes_of(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    return "\n".join(["running:", *running, "output:", out])


def test_demo_verifies_and_leaves_nothing_running(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "stack.py", "demo"], cwd=ROOT, env=stack_env(tmp_path),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Estimate VERIFIED: 1 customer(s) and 1 estimate(s)" in result.stdout
    assert "Demo VERIFIED: 1 invoice(s) linked to the estimate, 2 payment(s) applied, balance 0.00" in result.stdout
    assert "Lead VERIFIED: 1 contact(s) and 1 Angi note(s) for 2 posts of the lead" in result.stdout
    assert wait_gone(tmp_path) == []


def test_ctrl_c_on_make_run_stops_every_process(tmp_path: Path) -> None:
    process = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=stack_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=as_from_a_terminal)
    assert process.stdout is not None
    output = []
    deadline = time.monotonic() + 240
    for line in process.stdout:
        output.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert "Demo VERIFIED" in "".join(output), "".join(output)
    assert len(processes_of(tmp_path)) >= 5  # make, the stack, Temporal, the QBO sandbox, the API, the worker

    os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    try:
        rest, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("still running a minute after Ctrl-C:\n" + stuck(process, tmp_path)) from None

    # make re-raises the SIGINT it received itself, as it does in a terminal; the stack below it exits cleanly.
    assert process.returncode in (0, -signal.SIGINT), "".join(output) + rest
    assert "Every process the stack started has stopped." in rest
    assert wait_gone(tmp_path) == []


def test_port_in_use_gives_a_clear_message(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["LEDGERFLOW_API_PORT"])))
        squatter.listen()
        result = subprocess.run([sys.executable, "stack.py", "demo"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"port {env['LEDGERFLOW_API_PORT']} (HTTP API; change it with LEDGERFLOW_API_PORT)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert processes_of(tmp_path) == []


@pytest.fixture(autouse=True)
def _no_stray_processes(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    for pid in processes_of(tmp_path):  # never leave a failed test's stack running
        os.kill(pid, signal.SIGKILL)
