"""The wheel's build hook: compiles the Shoal library from this checkout and puts it into the
package, so that ``pip install ./bindings/python`` gives a package that works on its own.

The metadata is in ``pyproject.toml``; this file adds two commands to setuptools':

* ``build_py`` runs ``cargo build --release --locked -p shoal --lib`` in the repository (two
  folders up) and copies ``libshoal.so`` (stripped of its symbol table when ``strip`` is there)
  next to the Python modules. Cargo reuses an up-to-date release build in the same target
  directory (``CARGO_TARGET_DIR``, else ``<repo>/target``), so a wheel built after
  ``scripts/install.sh`` costs no second compilation. ``$CARGO`` names the cargo to run.
* ``bdist_wheel`` tags the wheel ``py3-none-<platform>``: it holds a native library, but no
  extension module (the binding is ctypes), so any Python 3 of that platform can use it.

Build wheels from a checkout (``pip install ./bindings/python``, ``pip wheel
./bindings/python``, ``python -m build --wheel bindings/python``): an sdist cannot hold the Rust
sources two folders up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

if sys.platform == "darwin":
    LIB_NAME = "libshoal.dylib"
elif sys.platform == "win32":
    LIB_NAME = "shoal.dll"
else:
    LIB_NAME = "libshoal.so"


def cargo(*args: str) -> str:
    """Runs cargo in the repository; returns its standard output."""
    command = [os.environ.get("CARGO", "cargo"), *args]
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise SystemExit(
            "building the shoal wheel needs Rust's cargo (https://rustup.rs) on the PATH, or $CARGO"
        ) from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"`{' '.join(command)}` failed (exit {e.returncode})") from None
    return done.stdout


def build_library() -> Path:
    """Builds the release library of this checkout; returns its path."""
    if not (REPO_ROOT / "Cargo.toml").is_file() or not (REPO_ROOT / "src" / "ffi").is_dir():
        raise SystemExit(
            f"no Shoal checkout at {REPO_ROOT}: build the wheel from bindings/python of a "
            "checkout (pip install ./bindings/python), not from an sdist"
        )
    cargo("build", "--release", "--locked", "-p", "shoal", "--lib")
    metadata = json.loads(cargo("metadata", "--format-version", "1", "--no-deps", "--locked"))
    library = Path(metadata["target_directory"]) / "release" / LIB_NAME
    if not library.is_file():
        raise SystemExit(f"cargo built no {library}")
    return library


class BuildPyWithLibrary(build_py):
    """``build_py`` that also puts the library into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            # An editable install runs the checkout's package, which finds target/ itself.
            return
        destination = Path(self.build_lib) / "shoal" / LIB_NAME
        self.mkpath(str(destination.parent))
        shutil.copyfile(build_library(), destination)
        destination.chmod(0o755)
        strip = shutil.which(os.environ.get("STRIP", "strip"))
        if strip and sys.platform.startswith("linux"):
            # The symbol table is a third of the file; the exported functions stay (.dynsym).
            subprocess.run([strip, "--strip-unneeded", str(destination)], check=True)


class PlatformWheel(bdist_wheel):
    """A wheel for any Python 3 of this platform (native library, no extension module)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
