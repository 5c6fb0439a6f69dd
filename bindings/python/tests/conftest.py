"""Test setup: makes `import shoal` work from the repository root
(`python3 -m pytest bindings/python/tests`) and provides realms on tmp_path."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # bindings/python
if str(PACKAGE_PARENT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_PARENT))

import shoal  # noqa: E402

REPO_ROOT = PACKAGE_PARENT.parents[1]

SCHEMA = {
    "classes": [
        {
            "name": "Person",
            "primary_key": "id",
            "properties": [
                {"name": "id", "type": "int"},
                {"name": "name", "type": "string", "indexed": True},
                {"name": "age", "type": "int"},
                {"name": "height", "type": "float", "nullable": True},
                {"name": "score", "type": "double"},
                {"name": "active", "type": "bool"},
                {"name": "photo", "type": "binary", "nullable": True},
                {"name": "born", "type": "timestamp", "nullable": True},
                {"name": "nick", "type": "string", "nullable": True},
                {"name": "best_friend", "type": "link", "target": "Person", "nullable": True},
                {"name": "dogs", "type": "link", "list": True, "target": "Dog"},
                {"name": "tags", "type": "string", "list": True},
                {"name": "lucky", "type": "int", "list": True, "nullable": True},
                {"name": "visits", "type": "int"},
            ],
        },
        {
            "name": "Dog",
            "primary_key": None,
            "properties": [
                {"name": "name", "type": "string"},
                {"name": "age", "type": "int"},
                {"name": "owner", "type": "link", "target": "Person", "nullable": True},
            ],
        },
        {
            "name": "Item",
            "primary_key": "sku",
            "properties": [
                {"name": "sku", "type": "string"},
                {"name": "price", "type": "double"},
                {"name": "qty", "type": "int"},
                {"name": "added", "type": "timestamp"},
            ],
        },
    ]
}


@pytest.fixture
def schema_dict():
    return SCHEMA


@pytest.fixture
def realm_path(tmp_path):
    return str(tmp_path / "test.realm")


@pytest.fixture
def config(realm_path):
    with shoal.Config(realm_path, schema=SCHEMA) as c:
        yield c


@pytest.fixture
def realm(config):
    with shoal.Realm.open(config) as r:
        yield r


PEOPLE = [
    # id, name, age, height, score, active, tags
    (1, "Ann", 31, 1.62, 9.5, True, ["a", "admin"]),
    (2, "bob", 25, 1.80, 7.0, False, []),
    (3, "Carla", 40, None, 8.25, True, ["a"]),
    (4, "dave", 25, 1.75, 6.5, False, ["x", "y", "z"]),
    (5, "Éva", 58, 1.60, 9.0, True, []),
]


@pytest.fixture
def people(realm):
    """`realm` with five Person objects (see PEOPLE) and two dogs of Ann's."""
    with realm.write():
        for pid, name, age, height, score, active, tags in PEOPLE:
            realm.create("Person", pid, name=name, age=age, height=height, score=score, active=active, tags=tags)
        ann = realm.find("Person", 1)
        for dname, dage in (("Rex", 3), ("Fido", 7)):
            d = realm.create("Dog", name=dname, age=dage, owner=ann)
            ann["dogs"].append(d)
        realm.find("Person", 2)["best_friend"] = ann
    return realm


@pytest.fixture(autouse=True)
def _collect_between_tests():
    yield
    gc.collect()
    shoal._core.drain_pending()


# ---- a real auth server (tests/shoal_server.py) ---------------------------------------------

APP_ID = "io.shoal.tests.python"


@pytest.fixture(scope="session")
def shoal_server(tmp_path_factory):
    """One `shoal-server` for the session (debug provider, admin password, fast hashing)."""
    from shoal_server import ShoalServer

    try:
        server = ShoalServer(tmp_path_factory.mktemp("server") / "data").start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Starts private servers (for tests that stop and restart them); all stopped at the end."""
    from shoal_server import ShoalServer

    servers = []

    def start(*extra_args):
        try:
            server = ShoalServer(tmp_path / f"server{len(servers)}", *extra_args)
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        servers.append(server)
        return server.start()

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def app(tmp_path):
    """An app in a fresh base directory, closed at the end."""
    with shoal.App(tmp_path / "app", APP_ID) as a:
        yield a
