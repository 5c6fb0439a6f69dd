"""The raw ctypes layer: declarations match the header, misuse through the C ABI is reported as
an error, never a crash, and the library is found where it is installed."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
from pathlib import Path

import shoal
from shoal import _ffi, errors
from shoal._ffi import lib

from conftest import REPO_ROOT

HEADER = (REPO_ROOT / "include" / "shoal.h").read_text()


def last():
    return errors.last_error()


# ---- the declarations mirror the header ---------------------------------------------------------


def test_every_header_function_is_declared():
    # Every exported function is declared with SHOAL_API; the header's `static inline` value
    # constructors (shoal_value_int, ...) are not in the library and have no declaration here.
    declared = set(re.findall(r"\bSHOAL_API\s+[^;(]*?\b(shoal_[a-z0-9_]+)\(", HEADER))
    known = set(_ffi.FUNCTIONS) | set(_ffi.OPTIONAL_FUNCTIONS)
    assert declared - known == set(), "functions in shoal.h without a ctypes declaration"
    assert set(_ffi.FUNCTIONS) - declared == set(), "declared functions missing from shoal.h"
    for name in _ffi.FUNCTIONS:
        fn = getattr(lib, name)
        assert fn.argtypes is not None, name


def test_every_header_constant_is_mirrored():
    defines = dict(re.findall(r"#define (SHOAL_[A-Z0-9_]+) (-?\d+)\n", HEADER))
    assert len(defines) > 50
    for name, value in defines.items():
        assert getattr(_ffi, name) == int(value), name


def test_error_table_covers_every_database_code():
    codes = {int(v) for n, v in re.findall(r"#define (SHOAL_ERR_(?!CATEGORY)[A-Z_]+) (-?\d+)", HEADER)}
    assert codes == set(errors.ERROR_CLASSES)
    for code, cls in errors.ERROR_CLASSES.items():
        assert cls.code_constant == code
        name = lib.shoal_error_name(code).decode()
        assert errors.error_for(code, 1, "m").name == name
    assert lib.shoal_error_name(123456) == b"UNKNOWN"


def test_struct_layout_matches_c():
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert ctypes.sizeof(_ffi.shoal_value_data_t) == 2 * ptr
    assert ctypes.sizeof(_ffi.shoal_value_t) == 8 + 2 * ptr
    assert _ffi.shoal_value_t.data.offset == 8
    assert ctypes.sizeof(_ffi.shoal_error_t) == 8 + 2 * ptr
    assert ctypes.sizeof(_ffi.shoal_property_key_t) == 8
    assert ctypes.sizeof(_ffi.shoal_timestamp_t) == 16


def test_versions():
    assert lib.shoal_libversion().decode() == _ffi.SHOAL_VERSION == shoal.LIBRARY_VERSION
    assert lib.shoal_libversion_number() == _ffi.SHOAL_VERSION_NUMBER


# ---- the last error -------------------------------------------------------------------------------


def test_last_error_is_reset_by_every_call():
    assert not lib.shoal_config_new(b"")
    e = last()
    assert isinstance(e, shoal.InvalidArgument) and e.category == _ffi.SHOAL_ERR_CATEGORY_LOGIC
    s = lib.shoal_schema_new()
    assert s and last() is None
    assert lib.shoal_release(s)
    assert not lib.shoal_get_last_error(None)


def test_clear_last_error():
    assert not lib.shoal_release(ctypes.c_void_p(16))
    assert lib.shoal_get_last_error(None)
    lib.shoal_clear_last_error()
    assert not lib.shoal_get_last_error(None)


# ---- misuse through the raw ABI -------------------------------------------------------------------


def test_null_handles_are_misuse():
    out = _ffi.shoal_value_t()
    assert not lib.shoal_object_get(None, b"x", ctypes.byref(out))
    assert isinstance(last(), shoal.Misuse)
    assert lib.shoal_results_count(None) == -1
    assert isinstance(last(), shoal.Misuse)
    assert not lib.shoal_realm_open(None)
    assert isinstance(last(), shoal.Misuse)
    assert lib.shoal_release(None)  # releasing NULL is a no-op
    assert last() is None
    assert not lib.shoal_clone(None)
    assert isinstance(last(), shoal.Misuse)


def test_released_handle_is_misuse_not_crash(config):
    realm = lib.shoal_realm_open(config._h)
    assert realm
    assert lib.shoal_release(realm)
    assert not lib.shoal_realm_begin_write(realm)
    e = last()
    assert isinstance(e, shoal.Misuse) and "released" in e.message
    assert not lib.shoal_release(realm)  # released twice
    assert isinstance(last(), shoal.Misuse)
    assert not lib.shoal_realm_get_schema_json(realm)
    assert isinstance(last(), shoal.Misuse)


def test_foreign_pointer_is_misuse():
    junk = ctypes.create_string_buffer(64)
    assert lib.shoal_list_size(ctypes.addressof(junk)) == -1
    assert isinstance(last(), shoal.Misuse)


def test_wrong_handle_kind_is_misuse(config):
    assert not lib.shoal_realm_begin_write(config._h)
    e = last()
    assert isinstance(e, shoal.Misuse) and "config" in e.message


def test_invalid_utf8_is_invalid_argument(config, realm):
    assert not lib.shoal_config_new(b"\xff")
    assert isinstance(last(), shoal.InvalidArgument)
    assert not lib.shoal_realm_objects(realm._h, b"Pers\xffon")
    assert isinstance(last(), shoal.InvalidArgument)
    s = lib.shoal_schema_new()
    try:
        assert not lib.shoal_schema_add_class(s, b"\xff", None)
        assert isinstance(last(), shoal.InvalidArgument)
    finally:
        lib.shoal_release(s)
    # a string *value* with invalid UTF-8
    with realm.write():
        obj = realm.create("Person", 1)
        v = _ffi.shoal_value_t()
        raw = ctypes.create_string_buffer(b"\xff\xfe")
        v.kind = _ffi.SHOAL_VALUE_STRING
        v.data.string.data = ctypes.cast(raw, ctypes.POINTER(ctypes.c_char))
        v.data.string.size = 2
        assert not lib.shoal_object_set(obj._h, b"name", ctypes.byref(v))
        assert isinstance(last(), shoal.InvalidArgument)
        assert obj["name"] == ""


def test_unknown_value_kind_is_invalid_argument(realm):
    with realm.write():
        obj = realm.create("Person", 1)
        v = _ffi.shoal_value_t()
        v.kind = 99
        assert not lib.shoal_object_set(obj._h, b"age", ctypes.byref(v))
        assert isinstance(last(), shoal.InvalidArgument)


def test_null_out_pointers_are_invalid_argument(realm):
    assert not lib.shoal_realm_is_empty(realm._h, None)
    assert isinstance(last(), shoal.InvalidArgument)
    with realm.write():
        obj = realm.create("Person", 1)
    assert not lib.shoal_object_get(obj._h, b"age", None)
    assert isinstance(last(), shoal.InvalidArgument)


def test_query_args_null_with_count_is_invalid_argument(realm):
    assert not lib.shoal_realm_query(realm._h, b"Person", b"age == $0", None, 1)
    assert isinstance(last(), shoal.InvalidArgument)


def test_null_change_callback_is_invalid_argument_and_frees_userdata(realm):
    freed = []
    free_fn = _ffi.shoal_free_userdata_fn_t(lambda ud: freed.append(ud))
    assert not lib.shoal_realm_add_change_callback(realm._h, _ffi.shoal_change_fn_t(), 7, free_fn)
    assert isinstance(last(), shoal.InvalidArgument)
    assert freed == [7]  # on failure free_userdata runs before the call returns


def test_value_free_resets_value_and_accepts_null():
    lib.shoal_value_free(None)
    v = _ffi.shoal_value_t()
    v.kind = _ffi.SHOAL_VALUE_INT
    v.data.integer = 5
    lib.shoal_value_free(ctypes.byref(v))
    assert v.kind == _ffi.SHOAL_VALUE_NULL  # reset, as documented
    lib.shoal_value_free(ctypes.byref(v))  # freeing twice is harmless
    lib.shoal_free(None)


def test_clone_shares_the_object(realm):
    with realm.write():
        realm.create("Person", 1, name="Ann")
    obj = realm.find("Person", 1)
    c = lib.shoal_clone(obj._h)
    assert c and c != obj._h
    obj.release()
    out = _ffi.shoal_value_t()
    assert lib.shoal_object_get(c, b"name", ctypes.byref(out))
    assert ctypes.string_at(out.data.string.data, out.data.string.size) == b"Ann"
    lib.shoal_value_free(ctypes.byref(out))
    assert out.kind == _ffi.SHOAL_VALUE_NULL
    assert lib.shoal_release(c)


def test_object_as_link_round_trip(people):
    ann = people.find("Person", 1)
    v = _ffi.shoal_value_t()
    assert lib.shoal_object_as_link(ann._h, ctypes.byref(v))
    assert v.kind == _ffi.SHOAL_VALUE_LINK
    assert v.data.link.class_name == b"Person" and v.data.link.key == ann.key
    with people.write():
        carla = people.find("Person", 3)
        assert lib.shoal_object_set(carla._h, b"best_friend", ctypes.byref(v))
    lib.shoal_value_free(ctypes.byref(v))
    assert people.find("Person", 3)["best_friend"] == ann


def test_object_from_link(people):
    ann = people.find("Person", 1)
    v = _ffi.shoal_value_t()
    assert lib.shoal_object_as_link(ann._h, ctypes.byref(v))
    p = lib.shoal_object_from_link(people._h, ctypes.byref(v))
    assert p
    lib.shoal_value_free(ctypes.byref(v))
    assert shoal.Object(p, people) == ann
    null = _ffi.shoal_value_t()
    assert not lib.shoal_object_from_link(people._h, ctypes.byref(null)) and last() is None
    num = _ffi.shoal_value_t(kind=_ffi.SHOAL_VALUE_INT)
    assert not lib.shoal_object_from_link(people._h, ctypes.byref(num))
    assert isinstance(last(), shoal.WrongType)
    bad = _ffi.shoal_value_t(kind=_ffi.SHOAL_VALUE_LINK)
    bad.data.link.class_name = b"Person"
    bad.data.link.key = 987654
    assert not lib.shoal_object_from_link(people._h, ctypes.byref(bad))
    assert isinstance(last(), shoal.ObjectDeleted)


def test_import_error_when_library_missing(tmp_path):
    env = {"SHOAL_LIBRARY": str(tmp_path / "nope.so"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", "import shoal"],
        cwd=str(REPO_ROOT / "bindings" / "python"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "ImportError" in r.stderr and "SHOAL_LIBRARY" in r.stderr


def test_build_folders_searched_after_the_loader(monkeypatch, tmp_path):
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "tgt"))
    paths = _ffi.candidate_paths()
    assert paths[0] == tmp_path / "tgt" / "release" / "libshoal.so"
    assert paths[1] == tmp_path / "tgt" / "debug" / "libshoal.so"
    assert paths[2] == REPO_ROOT / "target" / "release" / "libshoal.so"
    assert paths[3] == REPO_ROOT / "target" / "debug" / "libshoal.so"
    assert _ffi.packaged_path() == REPO_ROOT / "bindings" / "python" / "shoal" / "libshoal.so"


# ---- where `import shoal` finds the library, tried in fresh interpreters ------------------------
#
# Each test copies the package out of the repository (as an installed one is: no target/ above
# it), arranges the places the library may be, and imports it in a new interpreter with only the
# variables given.


def _installed_copy(tmp_path: Path) -> Path:
    """A copy of the package (without a library) in `<tmp>/a/b/site/shoal`; returns `site`."""
    site = tmp_path / "a" / "b" / "site"
    shutil.copytree(
        REPO_ROOT / "bindings" / "python" / "shoal",
        site / "shoal",
        ignore=shutil.ignore_patterns("__pycache__", "*.so*"),
    )
    return site


def _library_path_in_fresh_interpreter(site: Path, **env: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", "import shoal; print(shoal.LIBRARY_PATH)"],
        cwd=str(site.parent),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), **env},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _on_loader_path(tmp_path: Path) -> Path:
    """A folder holding the library under its SONAME, as scripts/install.sh leaves it."""
    lib_dir = tmp_path / "prefix" / "lib"
    lib_dir.mkdir(parents=True)
    (lib_dir / _ffi.soname(_ffi.SHOAL_VERSION)).symlink_to(Path(shoal.LIBRARY_PATH).resolve())
    return lib_dir


def test_the_library_inside_the_package_comes_first(tmp_path):
    site = _installed_copy(tmp_path)
    (site / "shoal" / "libshoal.so").symlink_to(Path(shoal.LIBRARY_PATH).resolve())
    found = _library_path_in_fresh_interpreter(
        site,
        LD_LIBRARY_PATH=str(_on_loader_path(tmp_path)),
        SHOAL_LIBRARY=str(tmp_path / "not-there.so"),
    )
    assert found == str(site / "shoal" / "libshoal.so")


def test_the_loader_path_comes_before_the_environment(tmp_path):
    site = _installed_copy(tmp_path)
    lib_dir = _on_loader_path(tmp_path)
    found = _library_path_in_fresh_interpreter(
        site, LD_LIBRARY_PATH=str(lib_dir), SHOAL_LIBRARY=str(tmp_path / "not-there.so")
    )
    assert Path(found) == lib_dir / _ffi.soname(_ffi.SHOAL_VERSION)


def test_shoal_library_then_cargo_target_dir(tmp_path):
    site = _installed_copy(tmp_path)
    real = str(Path(shoal.LIBRARY_PATH).resolve())
    assert _library_path_in_fresh_interpreter(site, SHOAL_LIBRARY=real) == real
    debug = tmp_path / "tgt" / "debug"
    debug.mkdir(parents=True)
    (debug / "libshoal.so").symlink_to(real)
    assert _library_path_in_fresh_interpreter(site, CARGO_TARGET_DIR=str(tmp_path / "tgt")) == str(
        debug / "libshoal.so"
    )


def test_import_error_lists_every_place_searched(tmp_path):
    site = _installed_copy(tmp_path)
    r = subprocess.run(
        [sys.executable, "-c", "import shoal"],
        cwd=str(site.parent),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "ImportError" in r.stderr
    for place in [
        str(site / "shoal" / "libshoal.so"),
        f"{_ffi.soname(_ffi.SHOAL_VERSION)} on the dynamic loader's path",
        "$SHOAL_LIBRARY (not set)",
        "target/debug/libshoal.so",
        "pip install ./bindings/python",
    ]:
        assert place in r.stderr, place
