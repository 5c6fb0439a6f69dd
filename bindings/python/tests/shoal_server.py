"""A real ``shoal-server`` process for the tests that need an auth server.

The binary is ``$SHOAL_SERVER`` if set, else ``shoal-server`` next to the loaded library, else
``$CARGO_TARGET_DIR/debug/shoal-server`` or ``<repo>/target/debug/shoal-server``
(``cargo build`` builds it: the server is a default member of the workspace). It runs on a
loopback port chosen by the system (``--listen 127.0.0.1:0``; the address is read from its
``listening on ADDR`` line), with the ``debug`` provider, an admin password and the cheap
(insecure, tests only) password hashing.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import shoal

REPO_ROOT = Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "admin-password"
#: How long to wait for the server (start, health, shutdown).
WAIT = 20.0

_EXE = "shoal-server.exe" if os.name == "nt" else "shoal-server"


def candidate_paths() -> list[Path]:
    dirs = [Path(shoal.LIBRARY_PATH).resolve().parent]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        t = Path(target)
        dirs.append((t if t.is_absolute() else REPO_ROOT / t) / "debug")
    dirs.append(REPO_ROOT / "target" / "debug")
    out: list[Path] = []
    for d in dirs:
        if d / _EXE not in out:
            out.append(d / _EXE)
    return out


def find_server() -> Path:
    """The ``shoal-server`` binary, or RuntimeError saying how to build it."""
    explicit = os.environ.get("SHOAL_SERVER")
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise RuntimeError(f"SHOAL_SERVER={explicit!r} does not name an existing file")
        return p
    for p in candidate_paths():
        if p.is_file():
            return p
    searched = "\n  ".join(str(p) for p in candidate_paths())
    raise RuntimeError(
        f"the shoal-server binary was not found: build it with `cargo build -p shoal-server` (or "
        f"`cargo build`) in {REPO_ROOT}, or set SHOAL_SERVER to its path. Searched:\n  {searched}"
    )


def closed_port_url() -> str:
    """An auth URL on a loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/auth"


def http(
    method: str, url: str, body: dict | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, dict | None]:
    """An HTTP request: (status, JSON answer or None); status 0 if nothing answered.
    ``context`` verifies ``https://`` servers (e.g. with a test CA)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except OSError:
        return 0, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


class ShoalServer:
    """One ``shoal-server`` process with its own data directory; :meth:`stop` and
    :meth:`start` again keep the data and the port."""

    def __init__(self, data_dir: Path, *extra_args: str, ca_file: Path | None = None):
        """``ca_file``: the server runs with TLS (``--tls-cert`` and ``--tls-key`` among
        ``extra_args``) and its certificate chains to this CA: URLs are ``https://`` and the
        health check verifies it."""
        self.binary = find_server()
        self.ssl_context = None if ca_file is None else ssl.create_default_context(cafile=str(ca_file))
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{self.address}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/auth"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> "ShoalServer":
        """Starts the server (on its previous port if it ran before, retrying while that port
        is still taken) and waits until ``/health`` answers."""
        deadline = time.monotonic() + WAIT
        while True:
            addr = self._spawn()
            if addr is not None:
                break
            if self.port == 0 or time.monotonic() > deadline:
                raise RuntimeError(f"shoal-server did not start; its log:\n{self.log_text()}")
            time.sleep(0.1)  # the old port may still be taken: try again
        self.port = int(addr.rsplit(":", 1)[1])
        while http("GET", f"{self.base_url}/health", context=self.ssl_context)[0] != 200:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"shoal-server never became healthy; its log:\n{self.log_text()}")
            time.sleep(0.02)
        return self

    def _spawn(self) -> str | None:
        """Runs the binary; its address, or None if it exited before announcing one."""
        args = [
            str(self.binary),
            "--data",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--debug-provider",
            "--insecure-fast-password-hashing",
            *self.extra_args,
        ]
        # The admin password through the environment: on the command line it would show in ps.
        env = {**os.environ, "SHOAL_ADMIN_PASSWORD": ADMIN_PASSWORD}
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
        finally:
            log.close()
        lines: queue.Queue[bytes] = queue.Queue()
        out = self.proc.stdout
        assert out is not None
        threading.Thread(target=lambda: lines.put(out.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=WAIT).decode(errors="replace").strip()
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"shoal-server printed no address within {WAIT} s; its log:\n{self.log_text()}")
        if not line.startswith("listening on "):
            self.proc.wait(timeout=WAIT)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc = None
            return None
        return line[len("listening on ") :]

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after a while). Stopping twice is harmless."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def access(self, refresh_token: str, path: str = "/~/tasks", app_id: str = "") -> tuple[int, int | None]:
        """``POST /auth`` with the ``realm`` provider: the status and Realm code of the
        answer (for checking which refresh tokens the server accepts)."""
        status, answer = http(
            "POST",
            self.auth_url,
            {"provider": "realm", "data": refresh_token, "app_id": app_id, "path": path, "user_info": {}},
        )
        return status, (answer or {}).get("code")
