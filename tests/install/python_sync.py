"""A Python program as a user writes it after ``pip install ./bindings/python``: no environment
variables, no path tricks. Starts a ``shoal-server`` (the binary given on the command line) in a
temporary directory, registers a user, opens one synced realm on two devices, writes on one,
queries on the other once synced, and writes back. Prints "python_sync.py: ok" on success.

    python python_sync.py PATH/TO/shoal-server

Run by scripts/check_install.sh in a fresh virtualenv, from outside the repository, with no
``SHOAL_*`` variables: ``import shoal`` must find the library the wheel put into the package.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import shoal

WAIT = 30.0


def start_server(binary: str, data: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Runs shoal-server on a free loopback port, its log in ``log``; returns it and its
    address."""
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [binary, "--data", str(data), "--listen", "127.0.0.1:0", "--insecure-fast-password-hashing"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    assert server.stdout is not None
    line = server.stdout.readline().decode().strip()
    if not line.startswith("listening on "):
        server.kill()
        raise SystemExit(f"python_sync.py: shoal-server did not start ({line!r}):\n{log.read_text()}")
    return server, line.removeprefix("listening on ")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} PATH/TO/shoal-server")
    packaged = Path(shoal.__file__).resolve().parent
    if Path(shoal.LIBRARY_PATH).resolve().parent != packaged:
        raise SystemExit(f"python_sync.py: loaded {shoal.LIBRARY_PATH}, not the library in {packaged}")

    schema = shoal.Schema().add_class("Task", primary_key="id")
    schema.add_property("Task", "id", "int").add_property("Task", "title", "string")
    schema.add_property("Task", "done", "bool")

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        server, address = start_server(sys.argv[1], Path(tmp) / "server", log)
        try:
            auth_url = f"http://{address}/auth"
            with shoal.App(Path(tmp) / "phone", "io.shoal.install-check") as phone, shoal.App(
                Path(tmp) / "laptop", "io.shoal.install-check"
            ) as laptop:
                alice = phone.login(shoal.Credentials.password("alice", "s3cret-pw", register=True), auth_url)
                alice_too = laptop.login(shoal.Credentials.password("alice", "s3cret-pw"), auth_url)
                url = f"realm://{address}/~/tasks"
                with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(alice, url), schema=schema)) as a:
                    with a.write():
                        for i in range(1, 6):
                            a.create("Task", i, title=f"task {i}", done=i % 2 == 0)
                    a.session.wait_for_upload(timeout=WAIT)
                    with shoal.Realm.open(shoal.Config(sync=shoal.SyncConfig(alice_too, url), schema=schema)) as b:
                        b.session.wait_for_download(timeout=WAIT)
                        b.refresh()
                        open_tasks = [t["title"] for t in b.query("Task", "done == $0 SORT(id ASC)", False)]
                        assert open_tasks == ["task 1", "task 3", "task 5"], open_tasks
                        assert str(b.session.state) == "SessionState.ACTIVE", b.session.state
                        with b.write():
                            b.find("Task", 1)["done"] = True
                        b.session.wait_for_upload(timeout=WAIT)
                    a.session.wait_for_download(timeout=WAIT)
                    a.refresh()
                    assert a.find("Task", 1)["done"] is True
                    assert len(a.query("Task", "done == true")) == 3
        except BaseException:
            print(f"python_sync.py: failed; the server's log:\n{log.read_text()}", file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=WAIT)
    print(f"python_sync.py: ok (Shoal {shoal.LIBRARY_VERSION} from {shoal.LIBRARY_PATH})")


if __name__ == "__main__":
    main()
