"""The package's structure: its modules import one another top to bottom only, its exception
classes cannot drift from the header's error codes, and its public API is documented and typed
(docstrings, annotations that resolve, ``py.typed``, enums that print their names)."""

from __future__ import annotations

import ast
import enum
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterator

import shoal
from shoal import _ffi, errors

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "bindings" / "python" / "shoal"
HEADER = (REPO_ROOT / "include" / "shoal.h").read_text()

#: The modules from the bottom up: each imports only modules before it.
LAYERS = ["_ffi", "errors", "_core", "log", "observe", "schema", "sync", "config", "app", "realm", "management", "aio", "__init__"]


def _package_imports(node: ast.AST) -> list[str]:
    """The sibling modules an import statement names (``from . import _ffi``, ``from .realm
    import Realm``)."""
    if not isinstance(node, ast.ImportFrom) or node.level != 1:
        return []
    if node.module is None:
        return [alias.name for alias in node.names]
    return [node.module.split(".")[0]]


def _imports_of(module: str) -> tuple[set[str], list[tuple[int, str]]]:
    """The sibling modules ``module`` imports at module level (``if TYPE_CHECKING:`` blocks
    included: an upward import for annotations is still an arrow up), and the imports it makes
    inside functions (line, module)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    runtime: set[str] = set()
    in_functions: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for name in _package_imports(child):
                if in_function:
                    in_functions.append((child.lineno, name))
                else:
                    runtime.add(name)
            visit(child, inner)

    visit(tree, False)
    return runtime, in_functions


def test_every_module_is_in_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(LAYERS)


def test_modules_import_only_the_modules_below_them():
    for i, module in enumerate(LAYERS):
        runtime, _ = _imports_of(module)
        above = runtime - set(LAYERS[:i])
        assert not above, f"shoal/{module}.py imports {sorted(above)}, which are not below it in {LAYERS}"


def test_no_module_imports_inside_a_function():
    for module in LAYERS:
        _, in_functions = _imports_of(module)
        assert not in_functions, f"shoal/{module}.py imports inside functions: {in_functions}"


def test_public_names_stay():
    for name in [
        "Config", "Realm", "Schema", "Object", "List", "Results", "Token", "App", "User",
        "Credentials", "SyncConfig", "Session", "delete_realm_files", "ShoalError",
    ]:  # fmt: skip
        assert name in shoal.__all__ and hasattr(shoal, name), name
    assert shoal.Token is shoal.realm.Token is shoal._core.Token
    assert shoal._core.handle_class("realm") is shoal.Realm
    assert shoal._core.handle_class("object") is shoal.Object
    assert shoal._core.handle_class("user") is shoal.User


# ---- the exceptions follow the header's SHOAL_ERR_* constants ----------------------------------


def _header_codes() -> dict[int, list[str]]:
    """Every error code of the header with its constant names (200 has two: SYNC, the family,
    and SESSION_CLOSED)."""
    codes: dict[int, list[str]] = {}
    for name, value in re.findall(r"#define SHOAL_ERR_(?!CATEGORY_)([A-Z0-9_]+) (-?\d+)\n", HEADER):
        codes.setdefault(int(value), []).append(name)
    return codes


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def test_every_header_code_has_its_exception_named_after_it():
    codes = _header_codes()
    assert len(codes) > 50
    assert set(codes) == set(errors.ERROR_CLASSES), "codes in shoal.h and shoal.errors differ"
    for code, names in codes.items():
        cls = errors.ERROR_CLASSES[code]
        assert cls.code_constant == code
        assert cls.__name__ in {_camel(n) for n in names} | {_camel(n) + "Error" for n in names}, (
            f"{cls.__name__} stands for SHOAL_ERR_{'/'.join(names)}"
        )
        assert cls.__name__ in errors.__all__, cls.__name__
        # The library's name of the code is one of the header's constants for it.
        assert lib_name(code) in names


def test_every_exception_class_stands_for_a_header_code():
    codes = _header_codes()
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.ShoalError) and cls.code_constant is not None:
            assert cls.code_constant in codes, f"{name} has code {cls.code_constant}, which shoal.h does not define"


def test_error_categories_match_the_header():
    categories = dict(re.findall(r"#define (SHOAL_ERR_CATEGORY_[A-Z]+) (\d+)\n", HEADER))
    assert categories, "no categories in shoal.h"
    for name, value in categories.items():
        assert getattr(_ffi, name) == int(value), name


def lib_name(code: int) -> str:
    return _ffi.lib.shoal_error_name(code).decode()


# ---- the public API is documented and typed ---------------------------------------------------


def _defined_in_package(fn: Callable[..., object]) -> bool:
    """Written in the package's source (not generated by dataclass, NamedTuple or enum)."""
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename.startswith(str(PACKAGE))


def _public_api() -> Iterator[tuple[str, object]]:
    """(name, object) of every public class and function of ``shoal.__all__``, and of every
    method and property the package's classes define or inherit from the package (``__init__``
    and the protocol methods included)."""
    seen: set[int] = set()
    for name in shoal.__all__:
        obj = getattr(shoal, name)
        if not inspect.isclass(obj):
            if inspect.isfunction(obj):
                yield name, obj
            continue
        yield name, obj
        for base in obj.__mro__:
            if not base.__module__.startswith("shoal"):
                continue
            for attr, value in vars(base).items():
                if attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__")):
                    continue
                fn = value.fget if isinstance(value, property) else value
                fn = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
                if inspect.isfunction(fn) and _defined_in_package(fn) and id(fn) not in seen:
                    seen.add(id(fn))
                    yield f"{obj.__name__}.{attr}", fn


def test_every_public_class_and_function_has_a_docstring():
    missing = [
        name
        for name, obj in _public_api()
        if not name.rsplit(".", 1)[-1].startswith("__") and not (obj.__doc__ or "").strip()
    ]
    assert not missing, f"public names without a docstring: {missing}"


def test_every_public_function_is_annotated_and_its_annotations_resolve():
    unannotated = []
    for name, fn in _public_api():
        if not inspect.isfunction(fn):
            continue
        signature = inspect.signature(fn)
        for param in signature.parameters.values():
            if param.name not in ("self", "cls") and param.annotation is inspect.Parameter.empty:
                unannotated.append(f"{name}({param.name})")
        if signature.return_annotation is inspect.Signature.empty:
            unannotated.append(f"{name} -> ?")
        # Annotations are strings (``from __future__ import annotations``): each must name a
        # real type from the function's module or the package.
        namespace = {**vars(shoal), **vars(sys.modules[fn.__module__])}
        typing.get_type_hints(fn, globalns=namespace)
    assert not unannotated, f"missing annotations: {unannotated}"


def test_value_type_names_what_properties_hold():
    import datetime

    for t in (type(None), bool, int, float, str, bytes, datetime.datetime, shoal.Timestamp, shoal.Object):
        assert t in typing.get_args(shoal.Value), t
    assert shoal.List in typing.get_args(shoal.PropertyValue)


def test_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert re.search(r'shoal\s*=\s*\[[^]]*"py\.typed"', pyproject), "py.typed is not package data"


def test_enums_print_their_names():
    enums = [getattr(shoal, n) for n in shoal.__all__ if isinstance(getattr(shoal, n), enum.EnumMeta)]
    assert {e.__name__ for e in enums} >= {
        "PropertyType", "PropertyFlag", "AuthEvent", "SessionState", "ConnectionState",
        "StopPolicy", "ProgressDirection", "ProgressMode",
    }  # fmt: skip
    for e in enums:
        for member in e:
            if member.name == "NONE":
                continue
            assert str(member) == f"{e.__name__}.{member.name}"
            assert f"{member}" == str(member) and f"{member:>40}".strip() == str(member)
            assert isinstance(member, int)  # still the C constant
    both = shoal.PropertyFlag.NULLABLE | shoal.PropertyFlag.INDEXED
    assert str(both) == "PropertyFlag.NULLABLE|INDEXED"


# ---- the package, the library and the build agree ----------------------------------------------


def test_versions_of_package_library_and_crate_agree():
    import tomllib

    crate = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text())["package"]["version"]
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["version"]
    assert crate == project == shoal.__version__ == _ffi.SHOAL_VERSION == shoal.LIBRARY_VERSION


def test_loader_name_is_the_librarys_soname():
    import subprocess

    if not sys.platform.startswith("linux"):
        return
    dynamic = subprocess.run(["readelf", "-d", str(shoal.LIBRARY_PATH)], check=True, capture_output=True, text=True)
    assert f"Library soname: [{_ffi.soname(_ffi.SHOAL_VERSION)}]" in dynamic.stdout
    assert _ffi.loader_names()[0] == _ffi.soname(_ffi.SHOAL_VERSION)
    assert _ffi.soname("0.1.7") == "libshoal.so.0.1" and _ffi.soname("2.3.4") == "libshoal.so.2"
