"""Opening, closing, transactions, modes and files."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

import pytest

import shoal

from conftest import PACKAGE_PARENT, SCHEMA


def test_open_context_manager_closes(config):
    with shoal.Realm.open(config) as realm:
        assert not realm.is_closed
        assert realm.is_empty
        assert realm.schema_version == 0
    assert realm.is_closed
    with pytest.raises(shoal.RealmClosed):
        realm.begin_write()
    realm.close()  # closing twice is harmless


def test_open_with_a_path_uses_the_files_schema(config, realm_path):
    with shoal.Realm.open(config) as r:
        with r.write():
            r.create("Person", 1, name="Ann")
    with shoal.Realm.open(realm_path) as r:
        assert set(r.schema()) == {"Person", "Dog", "Item"}
        assert r.find("Person", 1)["name"] == "Ann"


def test_closed_realm_objects_report_realm_closed_from_the_library(config):
    realm = shoal.Realm.open(config)
    with realm.write():
        obj = realm.create("Person", 1, name="Ann")
    results = realm.objects("Person")
    realm.close()
    with pytest.raises(shoal.RealmClosed) as e:
        obj["name"]
    assert e.value.category == shoal._ffi.SHOAL_ERR_CATEGORY_LOGIC
    with pytest.raises(shoal.RealmClosed):
        len(results)
    assert not obj.is_valid


def test_write_context_commits(realm, config):
    with realm.write() as r:
        assert r is realm and realm.in_transaction
        realm.create("Person", 1)
    assert not realm.in_transaction
    with shoal.Realm.open(config) as other:
        assert len(other.objects("Person")) == 1


def test_write_context_cancels_on_exception(realm):
    with pytest.raises(RuntimeError):
        with realm.write():
            realm.create("Person", 1)
            raise RuntimeError("boom")
    assert not realm.in_transaction
    assert realm.is_empty


def test_write_context_cancels_on_shoal_error(realm):
    with realm.write():
        realm.create("Person", 1)
    with pytest.raises(shoal.DuplicatePrimaryKey):
        with realm.write():
            realm.create("Person", 2)
            realm.create("Person", 1)
    assert len(realm.objects("Person")) == 1
    assert realm.find("Person", 2) is None


def test_begin_commit_cancel(realm):
    realm.begin_write()
    realm.create("Person", 1)
    realm.cancel_write()
    assert realm.is_empty
    realm.begin_write()
    realm.create("Person", 1)
    realm.commit()
    assert not realm.is_empty
    with pytest.raises(shoal.NotInWriteTransaction):
        realm.commit()
    with pytest.raises(shoal.NotInWriteTransaction):
        realm.cancel_write()


def test_begin_twice_on_one_handle(realm):
    realm.begin_write()
    with pytest.raises(shoal.AlreadyInWriteTransaction):
        realm.begin_write()
    realm.cancel_write()


def test_writes_outside_a_transaction(people):
    ann = people.find("Person", 1)
    with pytest.raises(shoal.NotInWriteTransaction):
        people.create("Person", 99)
    with pytest.raises(shoal.NotInWriteTransaction):
        ann["age"] = 1
    with pytest.raises(shoal.NotInWriteTransaction):
        ann.add_int("visits", 1)
    with pytest.raises(shoal.NotInWriteTransaction):
        ann.delete()
    with pytest.raises(shoal.NotInWriteTransaction):
        ann["tags"].append("x")
    with pytest.raises(shoal.NotInWriteTransaction):
        people.objects("Dog").delete_all()
    assert ann["age"] == 31


def test_refresh_sees_other_handles_commits(config):
    with shoal.Realm.open(config) as a, shoal.Realm.open(config) as b:
        v = b.version
        with a.write():
            a.create("Person", 1)
        assert b.version == v  # a handle keeps its snapshot...
        assert b.find("Person", 1) is None
        assert b.refresh() is True  # ...until refreshed
        assert b.find("Person", 1) is not None
        assert b.version > v
        assert b.refresh() is False


def test_schema_json_and_dump_json(people):
    schema = json.loads(people.schema_json())
    assert {c["name"] for c in schema["classes"]} == {"Person", "Dog", "Item"}
    dump = people.dump()
    assert dump == json.loads(people.dump_json())
    assert set(dump["objects"]["Person"]) == {"1", "2", "3", "4", "5"}
    assert dump["objects"]["Person"]["1"]["name"] == "Ann"


def test_read_only(config, realm_path):
    with shoal.Realm.open(config) as r:
        with r.write():
            r.create("Person", 1, name="Ann")
    ro = shoal.Config(realm_path, schema=SCHEMA, read_only=True)
    with shoal.Realm.open(ro) as r:
        assert r.find("Person", 1)["name"] == "Ann"
        with pytest.raises(shoal.ReadOnly):
            r.begin_write()


def test_read_only_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(shoal.FileNotFound) as e:
        shoal.Realm.open(shoal.Config(str(tmp_path / "missing.realm"), read_only=True))
    assert e.value.category == shoal._ffi.SHOAL_ERR_CATEGORY_FILE
    assert not (tmp_path / "missing.realm").exists()


def test_in_memory_realm(tmp_path):
    path = str(tmp_path / "mem.realm")
    cfg = shoal.Config(path, schema=SCHEMA, in_memory=True)
    with shoal.Realm.open(cfg) as a:
        with a.write():
            a.create("Person", 1)
        with shoal.Realm.open(cfg) as b:  # shared while open
            assert len(b.objects("Person")) == 1
    assert not os.path.exists(path)
    with shoal.Realm.open(cfg) as c:  # gone once every handle closed
        assert c.is_empty


def test_not_a_realm_file_is_incompatible(tmp_path):
    p = tmp_path / "junk.realm"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises(shoal.IncompatibleFile):
        shoal.Realm.open(shoal.Config(str(p)))


def test_delete_realm_files_while_open_is_realm_in_use(config, realm_path):
    realm = shoal.Realm.open(config)
    with pytest.raises(shoal.RealmInUse) as e:
        config.delete_realm_files()
    assert e.value.path == realm_path
    assert os.path.exists(realm_path)
    realm.close()
    config.delete_realm_files()
    assert not os.path.exists(realm_path)
    shoal.delete_realm_files(realm_path)  # a missing file is not an error


def test_delete_realm_files_after_garbage_collected_realm(config, realm_path):
    realm = shoal.Realm.open(config)
    del realm
    gc.collect()  # the handle release is queued, and done before the next call
    config.delete_realm_files()
    assert not os.path.exists(realm_path)


def test_delete_realm_files_while_an_object_keeps_the_file_open(config):
    realm = shoal.Realm.open(config)
    with realm.write():
        obj = realm.create("Person", 1)
    realm.release()  # released but not closed: the object still reads the file
    with pytest.raises(shoal.RealmInUse):
        config.delete_realm_files()
    assert obj["id"] == 1
    obj.release()
    config.delete_realm_files()


def _run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_PARENT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout)


def test_second_process_gets_file_in_use(config, realm_path):
    with shoal.Realm.open(config):
        r = _run_python(
            f"""
            import shoal
            try:
                shoal.Realm.open(shoal.Config({realm_path!r}))
            except shoal.FileInUse as e:
                print("FILE_IN_USE", e.code, e.category)
            """
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["FILE_IN_USE", "1018", str(shoal._ffi.SHOAL_ERR_CATEGORY_FILE)]
    # closed here: now the other process can open it
    r = _run_python(
        f"""
        import shoal
        with shoal.Realm.open(shoal.Config({realm_path!r})) as r:
            print(len(r.objects("Person")))
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


def test_process_exit_with_live_callbacks_is_clean(tmp_path):
    """A process that ends with open realms, live tokens and pending callbacks exits 0."""
    path = str(tmp_path / "exit.realm")
    code = "import shoal\nSCHEMA = " + repr(SCHEMA) + "\n" + textwrap.dedent(
        f"""
        realm = shoal.Realm.open(shoal.Config({path!r}, schema=SCHEMA, initial_data=lambda r: None))
        seen = []
        token = realm.add_change_callback(lambda v: seen.append(v))
        for i in range(20):
            with realm.write():
                realm.create("Person", i)
        print("done")
        """
    )
    r = _run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"


def test_compact(config):
    with shoal.Realm.open(config) as realm:
        with realm.write():
            for i in range(200):
                realm.create("Person", i, name="x" * 200)
        with realm.write():
            realm.objects("Person").delete_all()
        realm.compact()
        assert realm.is_empty
        with shoal.Realm.open(config) as other:
            with pytest.raises(shoal.RealmInUse):
                realm.compact()
            assert other.is_empty


def test_should_compact_callback(config, realm_path):
    with shoal.Realm.open(config) as realm:
        with realm.write():
            realm.create("Person", 1)
    calls = []

    def should(total, used):
        calls.append((total, used))
        return True

    cfg = shoal.Config(realm_path, schema=SCHEMA, should_compact=should)
    with shoal.Realm.open(cfg) as realm:
        assert realm.find("Person", 1) is not None
    assert len(calls) == 1
    total, used = calls[0]
    assert 0 < used <= total


def test_should_compact_callback_exception_is_logged(config, realm_path, caplog):
    shoal.Realm.open(config).close()

    def should(total, used):
        raise ZeroDivisionError

    with shoal.Realm.open(shoal.Config(realm_path, schema=SCHEMA, should_compact=should)) as r:
        assert r.is_empty
    assert any("should-compact" in rec.message for rec in caplog.records)


def test_encryption(tmp_path):
    path = str(tmp_path / "secret.realm")
    key = bytes(range(64))
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA, encryption_key=key)) as r:
        with r.write():
            r.create("Person", 1, name="very secret name")
    assert b"very secret name" not in open(path, "rb").read()
    with shoal.Realm.open(shoal.Config(path, encryption_key=key)) as r:
        assert r.find("Person", 1)["name"] == "very secret name"
    with pytest.raises(shoal.DecryptionFailed):
        shoal.Realm.open(shoal.Config(path, encryption_key=bytes(64)))
    with pytest.raises(shoal.ShoalError):
        shoal.Realm.open(shoal.Config(path))  # no key


def test_encryption_key_must_be_64_bytes(tmp_path):
    with shoal.Config(str(tmp_path / "k.realm")) as c:
        with pytest.raises(shoal.InvalidArgument):
            c.encryption_key = b"short"
        c.encryption_key = None
