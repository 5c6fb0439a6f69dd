"""The package's structure: its modules import one another top to bottom only, and its
exception classes cannot drift from the header's error codes."""

from __future__ import annotations

import ast
import re

import shoal
from shoal import _ffi, errors

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "bindings" / "python" / "shoal"
HEADER = (REPO_ROOT / "include" / "shoal.h").read_text()

#: The modules from the bottom up: each imports only modules before it.
LAYERS = ["_ffi", "errors", "_core", "schema", "sync", "config", "app", "realm", "management", "__init__"]


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
