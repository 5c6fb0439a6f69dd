"""List properties."""

from __future__ import annotations

import pytest

import shoal


@pytest.fixture
def person(realm):
    with realm.write():
        return realm.create("Person", 1, tags=["a", "b", "c"])


def test_len_index_negative_and_slices(person):
    tags = person["tags"]
    assert isinstance(tags, shoal.List)
    assert len(tags) == 3
    assert tags[0] == "a" and tags[2] == "c"
    assert tags[-1] == "c" and tags[-3] == "a"
    assert tags[1:] == ["b", "c"] and tags[::-1] == ["c", "b", "a"]
    assert list(tags) == ["a", "b", "c"] and tags == ["a", "b", "c"]
    assert "b" in tags and "z" not in tags


def test_out_of_range(person):
    tags = person["tags"]
    with pytest.raises(shoal.IndexOutOfBounds) as e:
        tags[3]
    assert e.value.code == shoal._ffi.SHOAL_ERR_INDEX_OUT_OF_BOUNDS
    with pytest.raises(IndexError):
        tags[-4]
    with person.realm.write():
        with pytest.raises(shoal.IndexOutOfBounds):
            tags.insert(5, "x")
        with pytest.raises(shoal.IndexOutOfBounds):
            tags.set(3, "x")
        with pytest.raises(shoal.IndexOutOfBounds):
            tags.erase(3)
        with pytest.raises(shoal.IndexOutOfBounds):
            tags.move(0, 3)


def test_mutations(person):
    tags = person["tags"]
    with person.realm.write():
        tags.append("d")
        tags.insert(0, "start")
        tags.insert(-1, "before-last")
        assert list(tags) == ["start", "a", "b", "c", "before-last", "d"]
        tags[1] = "A"
        tags.set(-1, "D")
        del tags[2]
        tags.erase(-2)
        assert list(tags) == ["start", "A", "c", "D"]
        tags.move(0, 3)
        assert list(tags) == ["A", "c", "D", "start"]
        tags.move(3, 0)
        assert tags.pop() == "D"
        assert tags.pop(0) == "start"
        tags.extend(["x", "y"])
    assert list(person["tags"]) == ["A", "c", "x", "y"]
    with person.realm.write():
        tags.clear()
    assert len(tags) == 0


def test_assigning_a_python_list_replaces_the_contents(person):
    with person.realm.write():
        person["tags"] = ("p", "q")
    assert person["tags"] == ["p", "q"]
    with person.realm.write():
        with pytest.raises(TypeError):
            person["tags"] = "pq"  # a str is not a list of elements


def test_element_types(person):
    with person.realm.write():
        with pytest.raises(shoal.WrongType):
            person["tags"].append(5)
        with pytest.raises(shoal.WrongType):
            person["tags"].append(None)  # elements are required
        lucky = person["lucky"]
        lucky.extend([7, None, 13])  # a nullable int list
    assert list(person["lucky"]) == [7, None, 13]


def test_list_of_links(people):
    ann = people.find("Person", 1)
    dogs = ann["dogs"]
    assert [d["name"] for d in dogs] == ["Rex", "Fido"]
    assert all(isinstance(d, shoal.Object) for d in dogs)
    assert dogs[-1]["name"] == "Fido"
    rex = dogs[0]
    with people.write():
        dogs.append(rex)  # the same object twice
        dogs.move(2, 0)
    assert [d["name"] for d in dogs] == ["Rex", "Rex", "Fido"]
    with people.write():
        rex.delete()  # list entries naming it vanish
    assert [d["name"] for d in ann["dogs"]] == ["Fido"]


def test_list_of_a_deleted_object(person):
    tags = person["tags"]
    with person.realm.write():
        person.delete()
    with pytest.raises(shoal.ObjectDeleted):
        tags[0]
    with pytest.raises(shoal.ObjectDeleted):
        len(tags)
    with pytest.raises(shoal.ObjectDeleted):
        person.list("tags")


def test_list_of_a_scalar_property_is_wrong_type(person):
    with pytest.raises(shoal.WrongType):
        person.list("name")
    with pytest.raises(shoal.NoSuchProperty):
        person.list("wings")


def test_reading_a_list_with_get_raw_is_wrong_type(person):
    out = shoal._ffi.shoal_value_t()
    assert not shoal._ffi.lib.shoal_object_get(person._h, b"tags", shoal._core.ctypes.byref(out))
    assert isinstance(shoal.errors.last_error(), shoal.WrongType)


def test_list_handles_release(person):
    with person["tags"] as tags:
        assert len(tags) == 3
    with pytest.raises(shoal.Misuse):
        len(tags)
