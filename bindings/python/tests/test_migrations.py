"""Schema versions, migrations and initial data."""

from __future__ import annotations

import logging

import pytest

import shoal

V0 = {
    "classes": [
        {
            "name": "Person",
            "primary_key": "id",
            "properties": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}],
        }
    ]
}
V1 = {
    "classes": [
        {
            "name": "Person",
            "primary_key": "id",
            "properties": [
                {"name": "id", "type": "int"},
                {"name": "first", "type": "string"},
                {"name": "last", "type": "string"},
            ],
        }
    ]
}


@pytest.fixture
def v0_file(realm_path):
    with shoal.Realm.open(shoal.Config(realm_path, schema=V0)) as r:
        with r.write():
            r.create("Person", 1, name="Ann Lee")
            r.create("Person", 2, name="Bob Stone")
    return realm_path


def split_names(realm, old, new):
    for p in realm.objects("Person"):
        first, last = p["name"].split(" ")
        p["first"] = first
        p["last"] = last


def test_migration_reads_old_and_writes_new_properties(v0_file):
    seen = []

    def migrate(realm, old, new):
        seen.append((old, new, realm.in_transaction))
        split_names(realm, old, new)

    with shoal.Realm.open(shoal.Config(v0_file, schema=V1, schema_version=1, migration=migrate)) as r:
        assert r.schema_version == 1
        ann = r.find("Person", 1)
        assert (ann["first"], ann["last"]) == ("Ann", "Lee")
        with pytest.raises(shoal.NoSuchProperty):
            ann["name"]  # removed after the migration
        assert set(r.schema()["Person"].properties) == {"id", "first", "last"}
    assert seen == [(0, 1, True)]


def test_schema_change_without_version_bump_is_migration_needed(v0_file):
    with pytest.raises(shoal.MigrationNeeded) as e:
        shoal.Realm.open(shoal.Config(v0_file, schema=V1, migration=split_names))
    assert e.value.path == v0_file


def test_version_bump_without_migration_callback_is_migration_needed(v0_file):
    with pytest.raises(shoal.MigrationNeeded):
        shoal.Realm.open(shoal.Config(v0_file, schema=V1, schema_version=1))


def test_lower_schema_version_is_an_error(v0_file):
    with shoal.Realm.open(shoal.Config(v0_file, schema=V0, schema_version=5)) as r:
        assert r.schema_version == 5  # same schema, higher version: no migration needed
    with pytest.raises(shoal.SchemaVersionLower) as e:
        shoal.Realm.open(shoal.Config(v0_file, schema=V0, schema_version=4))
    assert e.value.code == shoal._ffi.SHOAL_ERR_SCHEMA_VERSION_LOWER


def test_delete_if_migration_needed_starts_over(v0_file):
    cfg = shoal.Config(v0_file, schema=V1, schema_version=1, delete_if_migration_needed=True)
    with shoal.Realm.open(cfg) as r:
        assert r.is_empty and r.schema_version == 1
        assert "first" in r.schema()["Person"].properties


def test_migration_exception_aborts_and_leaves_the_file(v0_file, caplog):
    def broken(realm, old, new):
        realm.find("Person", 1)["first"] = "changed"
        raise RuntimeError("migration bug")

    caplog.set_level(logging.ERROR, logger="shoal")
    with pytest.raises(shoal.CallbackFailed) as e:
        shoal.Realm.open(shoal.Config(v0_file, schema=V1, schema_version=1, migration=broken))
    assert isinstance(e.value.__cause__, RuntimeError)
    assert any("migration callback raised" in r.message for r in caplog.records)
    with shoal.Realm.open(shoal.Config(v0_file, schema=V0)) as r:  # unchanged
        assert r.schema_version == 0 and r.find("Person", 1)["name"] == "Ann Lee"


def test_migration_returning_false_aborts(v0_file):
    with pytest.raises(shoal.CallbackFailed) as e:
        shoal.Realm.open(shoal.Config(v0_file, schema=V1, schema_version=1, migration=lambda r, a, b: False))
    assert e.value.__cause__ is None


def test_migration_failing_shoal_call_reports_its_error(v0_file):
    def dup(realm, old, new):
        realm.create("Person", 1)  # DuplicatePrimaryKey

    with pytest.raises(shoal.DuplicatePrimaryKey) as e:
        shoal.Realm.open(shoal.Config(v0_file, schema=V1, schema_version=1, migration=dup))
    assert isinstance(e.value.__cause__, shoal.DuplicatePrimaryKey)


def test_initial_data_runs_once(realm_path):
    runs = []

    def fill(realm):
        runs.append(realm.in_transaction)
        realm.create("Person", 1, name="Seed")

    cfg = shoal.Config(realm_path, schema=V0, initial_data=fill)
    with shoal.Realm.open(cfg) as r:
        assert r.find("Person", 1)["name"] == "Seed"
    with shoal.Realm.open(cfg) as r:
        assert len(r.objects("Person")) == 1
    assert runs == [True]


def test_initial_data_objects_can_be_kept(realm_path):
    kept = []
    cfg = shoal.Config(realm_path, schema=V0, initial_data=lambda r: kept.append(r.create("Person", 7, name="K")))
    with shoal.Realm.open(cfg):
        assert kept[0]["name"] == "K" and kept[0].realm.find("Person", 7) == kept[0]


def test_initial_data_failure_aborts_the_open(realm_path, caplog):
    def broken(realm):
        realm.create("Person", 1)
        raise KeyError("seed bug")

    caplog.set_level(logging.ERROR, logger="shoal")
    with pytest.raises(shoal.CallbackFailed) as e:
        shoal.Realm.open(shoal.Config(realm_path, schema=V0, initial_data=broken))
    assert isinstance(e.value.__cause__, KeyError)
    runs = []
    with shoal.Realm.open(shoal.Config(realm_path, schema=V0, initial_data=lambda r: runs.append(1))) as r:
        assert r.is_empty  # nothing of the failed transaction was kept
    assert runs == [1]  # and the file still counts as new


def test_initial_data_with_a_wrong_type_reports_wrong_type(realm_path):
    def broken(realm):
        realm.create("Person", 1)["name"] = 5

    with pytest.raises(shoal.WrongType):
        shoal.Realm.open(shoal.Config(realm_path, schema=V0, initial_data=broken))


def test_initial_data_not_run_for_an_existing_file(v0_file):
    runs = []
    with shoal.Realm.open(shoal.Config(v0_file, schema=V0, initial_data=lambda r: runs.append(1))):
        pass
    assert runs == []
