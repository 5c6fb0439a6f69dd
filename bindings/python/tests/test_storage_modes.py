"""Encryption at rest, read-only and in-memory realms and compaction, through the binding."""

from __future__ import annotations

import os
import time

import pytest

import shoal

from conftest import SCHEMA

KEY = bytes(range(64))
MARKER = "zebra-marker-7c1f"


def _fill(realm, n, start=0):
    with realm.write():
        for i in range(start, start + n):
            realm.create("Person", i, name=f"{MARKER}-{i}", age=i % 90)


def test_no_plaintext_on_disk_and_names_hidden(tmp_path):
    path = str(tmp_path / "enc.realm")
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA, encryption_key=KEY)) as r:
        _fill(r, 200)
    raw = open(path, "rb").read()
    for needle in (MARKER.encode(), b"Person", b"best_friend", b"shoal_meta"):
        assert needle not in raw, needle


def test_wrong_missing_and_extra_key(tmp_path):
    enc = str(tmp_path / "enc.realm")
    with shoal.Realm.open(shoal.Config(enc, schema=SCHEMA, encryption_key=KEY)) as r:
        _fill(r, 5)
    with pytest.raises(shoal.DecryptionFailed):
        shoal.Realm.open(shoal.Config(enc, encryption_key=bytes(64)))
    with pytest.raises(shoal.DecryptionFailed):
        shoal.Realm.open(shoal.Config(enc))
    plain = str(tmp_path / "plain.realm")
    with shoal.Realm.open(shoal.Config(plain, schema=SCHEMA)) as r:
        _fill(r, 5)
    with pytest.raises(shoal.DecryptionFailed):
        shoal.Realm.open(shoal.Config(plain, encryption_key=KEY))
    # The failed opens lost nothing.
    with shoal.Realm.open(shoal.Config(enc, encryption_key=KEY)) as r:
        assert len(r.objects("Person")) == 5
    with shoal.Realm.open(shoal.Config(plain)) as r:
        assert len(r.objects("Person")) == 5


def test_tampered_byte_is_a_decryption_error(tmp_path):
    path = str(tmp_path / "enc.realm")
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA, encryption_key=KEY)) as r:
        _fill(r, 2000)
    raw = bytearray(open(path, "rb").read())
    for at in range(16384 + 24 + 100, len(raw), 4136):  # one byte in every data block
        raw[at] ^= 0x40
    open(path, "wb").write(raw)
    with pytest.raises(shoal.DecryptionFailed):
        with shoal.Realm.open(shoal.Config(path, encryption_key=KEY)) as r:
            len(r.objects("Person"))


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_key_length_errors(tmp_path, length):
    with shoal.Config(str(tmp_path / "k.realm")) as c:
        with pytest.raises(shoal.InvalidArgument):
            c.encryption_key = bytes(length)


def test_read_only_never_writes(tmp_path):
    path = str(tmp_path / "ro.realm")
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA)) as r:
        _fill(r, 50)
    before, mtime = open(path, "rb").read(), os.stat(path).st_mtime_ns
    time.sleep(0.02)
    with shoal.Realm.open(shoal.Config(path, schema=SCHEMA, read_only=True)) as r:
        assert len(r.objects("Person")) == 50
        with pytest.raises(shoal.ReadOnly):
            r.begin_write()
        with pytest.raises(shoal.ReadOnly):
            r.compact()
    assert open(path, "rb").read() == before
    assert os.stat(path).st_mtime_ns == mtime
    with pytest.raises(shoal.FileNotFound):
        shoal.Realm.open(shoal.Config(str(tmp_path / "missing.realm"), read_only=True))


def test_in_memory_shares_data_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "mem.realm")
    cfg = shoal.Config(path, schema=SCHEMA, in_memory=True)
    a, b = shoal.Realm.open(cfg), shoal.Realm.open(cfg)
    _fill(a, 3)
    b.refresh()
    assert len(b.objects("Person")) == 3
    a.close()
    b.close()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("encrypted", [False, True])
def test_compaction_shrinks_and_keeps_data(tmp_path, encrypted):
    path = str(tmp_path / "c.realm")
    cfg = shoal.Config(path, schema=SCHEMA, encryption_key=KEY if encrypted else None)
    with shoal.Realm.open(cfg) as r:
        with r.write():
            for i in range(20_000):
                r.create("Person", i, name=f"{MARKER}-{i}-" + "x" * 40)
        with r.write():
            r.query("Person", "id >= 100").delete_all()
        big = os.path.getsize(path)
        r.compact()
        small = os.path.getsize(path)
        assert small < big / 2, (big, small)
        assert len(r.objects("Person")) == 100
    with shoal.Realm.open(cfg) as r:
        assert r.find("Person", 42)["name"].startswith(MARKER)
    if encrypted:
        assert MARKER.encode() not in open(path, "rb").read()
