"""Behaviour of the binding itself: handle ownership, values it refuses, stress."""

from __future__ import annotations

import gc
import threading

import pytest

import shoal
from shoal import _core
from shoal._ffi import lib

from conftest import SCHEMA


def test_release_resets_the_last_error_which_is_why_del_defers(realm):
    """shoal_release (like every call) resets the thread's last error: a release from __del__
    between a failing call and the read of its error would lose the error."""
    s = lib.shoal_schema_new()
    assert not lib.shoal_realm_objects(realm._h, b"Cat")
    assert lib.shoal_get_last_error(None)
    lib.shoal_release(s)
    assert not lib.shoal_get_last_error(None)


def test_garbage_collected_handles_are_released_before_the_next_call(people):
    obj = people.find("Person", 1)
    ptr = obj._ptr
    del obj
    gc.collect()
    assert ptr in _core._pending_release
    kept = people.find("Person", 2)  # the next call drains the queue first
    assert _core._pending_release == []
    assert kept["id"] == 2


def test_error_survives_garbage_collection_during_the_failing_call(people):
    garbage = [people.find("Person", 1) for _ in range(50)]
    del garbage
    with pytest.raises(shoal.NoSuchClass):  # the queued releases ran *before* the call
        people.objects("Cat")


def test_links_to_another_file_are_refused(tmp_path, realm):
    with shoal.Realm.open(shoal.Config(str(tmp_path / "other.realm"), schema=SCHEMA)) as other:
        with other.write():
            stranger = other.create("Person", 1)
        with realm.write():
            p = realm.create("Person", 1)
            with pytest.raises(ValueError):
                p["best_friend"] = stranger
            with pytest.raises(ValueError):
                p["dogs"].append(stranger)
        with pytest.raises(ValueError):
            realm.query("Person", "best_friend == $0", stranger)


def test_links_between_handles_of_one_file_are_fine(config, realm):
    with realm.write():
        ann = realm.create("Person", 1)
    with shoal.Realm.open(config) as same:
        with same.write():
            same.create("Person", 2)["best_friend"] = ann
        assert same.find("Person", 2)["best_friend"] == ann


def test_names_with_nul_are_refused(realm):
    with pytest.raises(ValueError):
        realm.objects("Person\0junk")
    with pytest.raises(ValueError):
        realm.query("Person", "age > 1\0 OR TRUEPREDICATE")
    with pytest.raises(TypeError):
        realm.objects(b"Person")


def test_query_argument_type_mismatch(people):
    with pytest.raises(shoal.InvalidQuery):
        people.query("Person", "age == $0", True)
    with pytest.raises(shoal.InvalidQuery):
        people.query("Person", "name == $0", 5)
    assert len(people.query("Person", "age > $1 AND age < $0", 50, 30)) == 2


def test_two_primary_keys_given(realm):
    with realm.write():
        with pytest.raises(ValueError):
            realm.create("Person", 1, id=2)
        assert realm.create("Person", 1, id=1)["id"] == 1


def test_write_block_that_ends_the_transaction_itself(realm):
    with realm.write():
        realm.create("Person", 1)
        realm.commit()
    with realm.write():
        realm.create("Person", 2)
        realm.cancel_write()
    assert [o["id"] for o in realm.objects("Person")] == [1]


def test_float32_and_timestamp_helpers():
    assert repr(shoal.Float32(0.5)) == "Float32(0.5)" and shoal.Float32(0.5) == 0.5
    t = shoal.Timestamp(86400, 5000)
    assert t.to_datetime().isoformat() == "1970-01-02T00:00:00.000005+00:00"
    assert shoal.Timestamp.from_datetime(t.to_datetime()) == t


def test_error_objects():
    e = shoal.errors.error_for(1006, 1, "no class", "/x")
    assert isinstance(e, shoal.NoSuchClass) and e.name == "NO_SUCH_CLASS"
    assert str(e) == "no class [NO_SUCH_CLASS] (path: /x)"
    assert "code=1006" in repr(e)
    other = shoal.errors.error_for(150, 1, "odd")  # a code without a subclass
    assert type(other) is shoal.ShoalError and other.name == "UNKNOWN"
    denied = shoal.errors.error_for(206, 7, "denied")  # sync protocol codes have their classes
    assert type(denied) is shoal.PermissionDenied and isinstance(denied, shoal.SyncProtocolError)
    import pickle

    assert pickle.loads(pickle.dumps(e)).path == "/x"


def test_concurrent_counter_increments(config):
    def work():
        with shoal.Realm.open(config) as r:
            for _ in range(25):
                with r.write():
                    r.find("Person", 1).add_int("visits", 1)

    with shoal.Realm.open(config) as realm:
        with realm.write():
            realm.create("Person", 1)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        realm.refresh()
        assert realm.find("Person", 1)["visits"] == 100


def test_many_objects_round_trip(realm):
    with realm.write():
        for i in range(500):
            realm.create("Dog", name=f"dog{i}", age=i % 17)
    dogs = realm.objects("Dog")
    assert len(dogs) == 500
    assert dogs.sum("age") == sum(i % 17 for i in range(500))
    assert len(realm.query("Dog", "name ENDSWITH '9'")) == 50


def test_reprs(people):
    assert "Person" in repr(people.objects("Person"))
    assert "tags" in repr(people.find("Person", 1)["tags"])
    assert "test.realm" in repr(people)
    assert "Schema" in repr(shoal.Schema())
    t = people.add_change_callback(lambda v: None)
    assert "Token" in repr(t)
    t.release()
    assert "released" in repr(t)


def test_readme_example_runs(tmp_path, monkeypatch):
    """The README's example is real code: run it."""
    import re

    from conftest import PACKAGE_PARENT

    text = (PACKAGE_PARENT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
