"""Schema builder, schema JSON and configurations."""

from __future__ import annotations

import json

import pytest

import shoal


def test_builder_and_to_json():
    s = (
        shoal.Schema()
        .add_class("Person", primary_key="id")
        .add_property("Person", "id", shoal.PropertyType.INT)
        .add_property("Person", "name", "string", nullable=True, indexed=True)
        .add_property("Person", "dogs", "link", list=True, target="Dog")
        .add_class("Dog")
        .add_property("Dog", "weight", shoal.PropertyType.FLOAT)
    )
    classes = s.classes()
    assert set(classes) == {"Person", "Dog"}
    assert classes["Person"].primary_key == "id"
    name = classes["Person"].properties["name"]
    assert (name.type, name.nullable, name.indexed, name.is_list) == (shoal.PropertyType.STRING, True, True, False)
    dogs = classes["Person"].properties["dogs"]
    assert dogs.is_list and dogs.target == "Dog" and dogs.type == shoal.PropertyType.LINK
    assert classes["Dog"].primary_key is None
    s.release()


def test_from_json_round_trip(schema_dict):
    s = shoal.Schema.from_json(schema_dict)
    text = s.to_json()
    again = shoal.Schema.from_json(text)
    assert json.loads(again.to_json()) == json.loads(text)
    assert set(json.loads(text)["classes"][0]) >= {"name", "primary_key", "properties"}
    assert shoal.Schema.from_json(json.dumps(schema_dict)).classes().keys() == s.classes().keys()


def test_malformed_json_is_json_error():
    with pytest.raises(shoal.JsonError) as e:
        shoal.Schema.from_json("{not json")
    assert e.value.code == shoal._ffi.SHOAL_ERR_JSON and e.value.category == shoal._ffi.SHOAL_ERR_CATEGORY_CLIENT


def test_invalid_schema_json_is_invalid_argument():
    with pytest.raises(shoal.InvalidArgument):
        shoal.Schema.from_json({"classes": [{"name": "A", "properties": [{"name": "x", "type": "quaternion"}]}]})


def test_builder_errors():
    s = shoal.Schema().add_class("A")
    with pytest.raises(shoal.InvalidArgument):
        s.add_class("A")  # duplicate
    with pytest.raises(shoal.InvalidArgument):
        s.add_class("")
    with pytest.raises(shoal.NoSuchClass):
        s.add_property("Nope", "x", "int")
    s.add_property("A", "x", "int")
    with pytest.raises(shoal.InvalidArgument):
        s.add_property("A", "x", "int")  # duplicate property
    with pytest.raises(shoal.InvalidArgument):
        s.add_property("A", "y", 42)  # unknown type number
    with pytest.raises(ValueError):
        s.add_property("A", "z", "quaternion")


def test_schema_with_dangling_link_is_rejected_by_config(tmp_path):
    s = shoal.Schema().add_class("A").add_property("A", "b", "link", target="B", nullable=True)
    with shoal.Config(str(tmp_path / "x.realm")) as c:
        with pytest.raises(shoal.InvalidArgument):
            c.schema = s
        assert c.schema is None


def test_released_schema_raises_misuse():
    s = shoal.Schema()
    s.release()
    s.release()  # harmless
    with pytest.raises(shoal.Misuse):
        s.add_class("A")


def test_config_properties(tmp_path, schema_dict):
    path = str(tmp_path / "c.realm")
    cfg = shoal.Config(path, schema=schema_dict, schema_version=3, delete_if_migration_needed=True)
    assert cfg.path == path
    assert cfg.schema_version == 3 and cfg.delete_if_migration_needed
    assert not cfg.in_memory and not cfg.read_only
    assert set(cfg.schema.classes()) == {"Person", "Dog", "Item"}
    cfg.schema = None
    assert cfg.schema is None
    with pytest.raises(ValueError):
        cfg.schema_version = -1
    with pytest.raises(TypeError):
        cfg.initial_data = 42
    cfg.release()


def test_config_rejects_empty_path():
    with pytest.raises(shoal.InvalidArgument):
        shoal.Config("")


def test_config_accepts_pathlike(tmp_path):
    with shoal.Config(tmp_path / "p.realm") as c:
        assert c.path == str(tmp_path / "p.realm")


def test_config_callback_registrations_are_freed(tmp_path):
    before = shoal._core.registry_size()
    cfg = shoal.Config(str(tmp_path / "r.realm"), initial_data=lambda r: None, migration=lambda r, a, b: None)
    assert shoal._core.registry_size() == before + 2
    cfg.initial_data = lambda r: None  # replaces (and frees) the first one
    assert shoal._core.registry_size() == before + 2
    cfg.migration = None
    assert shoal._core.registry_size() == before + 1
    cfg.release()
    assert shoal._core.registry_size() == before
