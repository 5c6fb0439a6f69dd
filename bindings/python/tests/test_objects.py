"""Objects: creating, finding, every value type, links, counters, deletion, errors."""

from __future__ import annotations

import datetime as dt
import math

import pytest

import shoal

UTC = dt.timezone.utc


def test_create_and_find_by_primary_key(realm):
    with realm.write():
        ann = realm.create("Person", 1, name="Ann", age=31)
        bob = realm.create("Person", id=2, name="Bob")  # primary key by name
        item = realm.create("Item", "sku-1", price=2.5)  # string primary key
        realm.create("Person", pk=3, name="Carla")  # as the keyword pk
    assert ann.class_name == "Person"
    assert realm.find("Person", 1) == ann
    assert realm.find("Person", 2)["name"] == "Bob"
    assert realm.find("Item", "sku-1")["price"] == 2.5
    assert realm.find("Person", 3)["name"] == "Carla"
    assert realm.find("Person", 4) is None
    assert item != ann and bob != ann


def test_create_needs_the_primary_key_type(realm):
    with realm.write():
        with pytest.raises(shoal.WrongType):
            realm.create("Person", "one")
        with pytest.raises(shoal.WrongType):
            realm.create("Item", 7)
    with pytest.raises(shoal.WrongType):
        realm.find("Person", "1")


def test_find_in_a_class_without_primary_key_is_invalid_argument(realm):
    with pytest.raises(shoal.InvalidArgument):
        realm.find("Dog", 1)


def test_duplicate_primary_key(realm):
    with realm.write():
        realm.create("Person", 1)
        with pytest.raises(shoal.DuplicatePrimaryKey) as e:
            realm.create("Person", 1)
        assert e.value.code == 1008
    assert len(realm.objects("Person")) == 1


def test_primary_key_cannot_change(realm):
    with realm.write():
        ann = realm.create("Person", 1)
        with pytest.raises(shoal.InvalidArgument):
            ann["id"] = 2
    assert ann["id"] == 1


def test_unknown_class_and_property(realm):
    with pytest.raises(shoal.NoSuchClass):
        realm.objects("Cat")
    with pytest.raises(shoal.NoSuchClass):
        realm.find("Cat", 1)
    with realm.write():
        with pytest.raises(shoal.NoSuchClass):
            realm.create("Cat")
        ann = realm.create("Person", 1)
        with pytest.raises(shoal.NoSuchProperty):
            ann["wings"] = 2
        with pytest.raises(KeyError):  # NoSuchProperty is a KeyError too
            ann["wings"]
        with pytest.raises(shoal.NoSuchProperty):
            realm.create("Person", 2, wings=2)
    assert ann.get("wings", "none") == "none"
    with pytest.raises(shoal.NoSuchProperty):
        ann.get("wings")
    with pytest.raises(shoal.NoSuchClass):
        realm.property_key("Cat", "x")
    with pytest.raises(shoal.NoSuchProperty):
        realm.property_key("Person", "wings")


def test_defaults_of_a_new_object(realm):
    with realm.write():
        p = realm.create("Person", 1)
    assert p["name"] == "" and p["age"] == 0 and p["score"] == 0.0 and p["active"] is False
    assert p["height"] is None and p["photo"] is None and p["born"] is None and p["nick"] is None
    assert p["best_friend"] is None
    assert list(p["dogs"]) == [] and len(p["tags"]) == 0


def test_every_value_type_round_trips(realm):
    born = dt.datetime(1990, 5, 17, 13, 45, 30, 123456, tzinfo=UTC)
    with realm.write():
        p = realm.create("Person", 1)
        p["name"] = "Ann ✓ 日本"
        p["age"] = -(2**63)
        p["height"] = 1.5
        p["score"] = math.pi
        p["active"] = True
        p["photo"] = b"\x00\x01\xffbytes"
        p["born"] = born
        p["nick"] = "a\x00b"  # strings are sized, NUL inside is kept
    assert p["name"] == "Ann ✓ 日本"
    assert p["age"] == -(2**63)
    assert p["height"] == 1.5 and isinstance(p["height"], shoal.Float32)
    assert p["score"] == math.pi and type(p["score"]) is float
    assert p["active"] is True
    assert p["photo"] == b"\x00\x01\xffbytes"
    assert p["born"] == born and p["born"].tzinfo is not None
    assert p["nick"] == "a\x00b"
    with realm.write():
        p["photo"] = b""
        p["nick"] = ""
        p["age"] = 2**63 - 1
    assert p["photo"] == b"" and p["nick"] == "" and p["age"] == 2**63 - 1


def test_nullable_properties_accept_none_required_ones_do_not(realm):
    with realm.write():
        p = realm.create("Person", 1, height=1.0, nick="x", photo=b"y")
        p.set(height=None, nick=None, photo=None, born=None)
        assert (p["height"], p["nick"], p["photo"], p["born"]) == (None, None, None, None)
        for prop in ("name", "age", "score", "active"):
            with pytest.raises(shoal.WrongType):
                p[prop] = None


@pytest.mark.parametrize(
    "prop,value",
    [
        ("age", "31"),
        ("age", 1.5),
        ("age", True),
        ("name", 5),
        ("name", b"bytes"),
        ("active", 1),
        ("score", "x"),
        ("photo", "text"),
        ("born", 12345),
        ("height", "tall"),
    ],
)
def test_wrong_types_are_rejected(realm, prop, value):
    with realm.write():
        p = realm.create("Person", 1)
        with pytest.raises(shoal.WrongType) as e:
            p[prop] = value
        assert isinstance(e.value, TypeError)


def test_link_to_the_wrong_class_is_wrong_type(realm):
    with realm.write():
        p = realm.create("Person", 1)
        d = realm.create("Dog", name="Rex")
        with pytest.raises(shoal.WrongType):
            p["best_friend"] = d
        with pytest.raises(shoal.WrongType):
            p["dogs"].append(p)


def test_python_values_that_cannot_be_stored(realm):
    with realm.write():
        p = realm.create("Person", 1)
        with pytest.raises(TypeError):
            p["age"] = object()
        with pytest.raises(OverflowError):
            p["age"] = 2**63
        with pytest.raises(ValueError):
            p["born"] = dt.datetime(2020, 1, 1)  # naive


def test_numbers_widen_to_the_property_type(realm):
    with realm.write():
        p = realm.create("Person", 1, score=3, height=2)  # ints for DOUBLE and FLOAT
        p["height"] = 1.1  # a float for a FLOAT property
    assert p["score"] == 3.0 and type(p["score"]) is float
    assert p["height"] == pytest.approx(1.1) and isinstance(p["height"], shoal.Float32)
    with realm.write():
        p["height"] = shoal.Float32(0.25)
    assert p["height"] == 0.25


def test_timestamps(realm):
    plus2 = dt.timezone(dt.timedelta(hours=2))
    local = dt.datetime(2021, 3, 4, 12, 0, tzinfo=plus2)
    with realm.write():
        p = realm.create("Person", 1, born=local)
        q = realm.create("Person", 2, born=dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC))
        r = realm.create("Person", 3, born=shoal.Timestamp(10, 123456789))
    assert p["born"] == local and p["born"].utcoffset() == dt.timedelta(0)
    assert p["born"].hour == 10
    assert q["born"] == dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)  # before the epoch
    assert r["born"] == dt.datetime(1970, 1, 1, 0, 0, 10, 123456, tzinfo=UTC)
    with realm.write():
        far = shoal.Timestamp(10**12, 5)  # beyond datetime's range
        r["born"] = far
    assert r["born"] == far


def test_add_int_counter(realm):
    with realm.write():
        p = realm.create("Person", 1)
        p.add_int("visits", 5)
        p.add_int("visits")
        p.add_int("visits", -2)
        with pytest.raises(shoal.WrongType):
            p.add_int("name", 1)
    assert p["visits"] == 4


def test_delete_object(people):
    ann = people.find("Person", 1)
    alias = people.find("Person", 1)
    bob = people.find("Person", 2)
    assert bob["best_friend"] == ann
    with people.write():
        ann.delete()
    assert not ann.is_valid and not alias.is_valid
    with pytest.raises(shoal.ObjectDeleted):
        alias["name"]
    with people.write():
        with pytest.raises(shoal.ObjectDeleted):
            ann["name"] = "x"
        with pytest.raises(shoal.ObjectDeleted):
            ann.delete()
        with pytest.raises(shoal.ObjectDeleted):
            bob["best_friend"] = ann  # cannot link to a deleted object
    assert bob["best_friend"] is None  # links to it became NULL
    assert people.find("Person", 1) is None
    assert len(people.objects("Person")) == 4
    ann.release()  # the handle stays valid to release
    assert not ann.is_valid


def test_links(people):
    ann, bob, carla = (people.find("Person", i) for i in (1, 2, 3))
    assert bob["best_friend"] == ann
    assert bob.linked("best_friend") == ann
    assert carla["best_friend"] is None and carla.linked("best_friend") is None
    with people.write():
        carla["best_friend"] = bob
        bob["best_friend"] = None
    assert carla["best_friend"]["name"] == "bob"
    assert bob["best_friend"] is None
    dogs = people.objects("Dog")
    assert {d["owner"]["name"] for d in dogs} == {"Ann"}


def test_property_keys(people):
    key = people.property_key("Person", "age")
    assert isinstance(key, shoal._ffi.shoal_property_key_t)
    ann = people.find("Person", 1)
    assert ann.get_by_key(key) == 31
    with people.write():
        ann.set_by_key(key, 32)
    assert ann["age"] == 32
    dog_key = people.property_key("Dog", "age")
    with pytest.raises(shoal.InvalidArgument):
        ann.get_by_key(dog_key)  # a key of another class
    link_key = people.property_key("Person", "best_friend")
    assert people.find("Person", 2).get_by_key(link_key) == ann


def test_dict_like_access(people):
    ann = people.find("Person", 1)
    assert "name" in ann and "wings" not in ann
    assert list(ann)[:3] == ["id", "name", "age"]
    assert ann.keys() == list(ann)
    d = ann.to_dict()
    assert d["name"] == "Ann" and d["tags"] == ["a", "admin"] and [x["name"] for x in d["dogs"]] == ["Rex", "Fido"]
    assert dict(ann.items())["age"] == 31
    assert len(ann.values()) == len(ann.keys())
    assert ann.get("name") == "Ann"
    assert "Person" in repr(ann)


def test_object_handles_compare_and_hash(people):
    a1 = people.find("Person", 1)
    a2 = people.objects("Person").sort("id")[0]
    assert a1 == a2 and hash(a1) == hash(a2) and a1 is not a2
    assert len({a1, a2, people.find("Person", 2)}) == 2


def test_released_object_raises_misuse(people):
    ann = people.find("Person", 1)
    with ann:
        assert ann["name"] == "Ann"
    with pytest.raises(shoal.Misuse):
        ann["name"]


def test_object_sees_its_realms_snapshot(config, people):
    with shoal.Realm.open(config) as other:
        o = other.find("Person", 1)
        with people.write():
            people.find("Person", 1)["age"] = 99
        assert o["age"] == 31
        other.refresh()
        assert o["age"] == 99
