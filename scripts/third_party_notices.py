#!/usr/bin/env python3
"""Writes THIRD-PARTY-NOTICES: the licenses of everything the Shoal library bundles.

The C libraries (libshoal.so, libshoal.a) and the Python wheel contain, compiled in, every crate
of the `shoal` package's normal dependency graph (build scripts' dependencies and dev-dependencies
are not shipped) and Rust's standard library. For each crate this lists its version and SPDX
license expression, then reproduces the license files its published package carries (LICENSE*,
COPYING*, NOTICE*, ...: the copyright lines the MIT and BSD licenses require are in them),
each distinct text once with the crates that carry it.

    python3 scripts/third_party_notices.py          # rewrites THIRD-PARTY-NOTICES
    python3 scripts/third_party_notices.py --check  # fails if it is stale (CI)

Needs cargo and the crates' sources in Cargo's registry cache (any build has fetched them).
Only the standard library is used, so it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "THIRD-PARTY-NOTICES"
ROOT_PACKAGE = "shoal"
#: File names (case-insensitive prefixes) that hold a crate's license or notices.
LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|copyright|unlicense)", re.IGNORECASE)

STANDARD_LIBRARY = """\
Rust's standard library (std, core, alloc and their dependencies) is compiled into the
library as well. It is licensed under "MIT OR Apache-2.0"; its copyright notice and license
texts are those of the Rust project (https://github.com/rust-lang/rust: COPYRIGHT,
LICENSE-MIT, LICENSE-APACHE). The Apache-2.0 text is the one in ../LICENSE of Shoal's
repository and is reproduced below with the crates that carry it."""


def cargo_metadata() -> dict:
    host = next(
        line.split(":", 1)[1].strip()
        for line in subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout.splitlines()
        if line.startswith("host:")
    )
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def bundled_packages(metadata: dict) -> list[dict]:
    """The packages reachable from `shoal` through normal dependencies, `shoal` excluded."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    workspace = set(metadata["workspace_members"])
    root = next(i for i in workspace if packages[i]["name"] == ROOT_PACKAGE)
    seen: set[str] = set()
    stack = [root]
    while stack:
        node = nodes[stack.pop()]
        for dep in node["deps"]:
            if any(kind["kind"] is None for kind in dep["dep_kinds"]) and dep["pkg"] not in seen:
                seen.add(dep["pkg"])
                stack.append(dep["pkg"])
    return sorted(
        (packages[i] for i in seen if i not in workspace),
        key=lambda p: (p["name"], p["version"]),
    )


def license_texts(package: dict) -> list[tuple[str, str]]:
    """(file name, text) of every license file in the package's folder."""
    folder = Path(package["manifest_path"]).parent
    files = sorted(f for f in folder.iterdir() if f.is_file() and LICENSE_FILE.match(f.name))
    if package.get("license_file"):
        extra = folder / package["license_file"]
        if extra.is_file() and extra not in files:
            files.append(extra)
    return [(f.name, f.read_text(encoding="utf-8", errors="replace")) for f in files]


def normalized(text: str) -> str:
    """The text with trailing spaces and surrounding blank lines removed (same text, same key)."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def render(packages: list[dict]) -> str:
    lines = [
        "THIRD-PARTY NOTICES",
        "",
        "Shoal's library (libshoal.so, libshoal.a, and the copy in the Python wheel) is licensed",
        "under Apache-2.0 (see LICENSE) and bundles the following crates, compiled in. The list",
        "comes from the workspace's dependency resolution, so it may name a crate that only",
        "another package of the workspace enables. Written by scripts/third_party_notices.py",
        "from Cargo.lock and the crates' published packages; do not edit by hand.",
        "",
        STANDARD_LIBRARY,
        "",
        "Crates (name version: license):",
        "",
    ]
    texts: dict[str, tuple[str, list[str]]] = {}
    missing: list[str] = []
    for p in packages:
        label = f"{p['name']} {p['version']}"
        lines.append(f"  {label}: {p.get('license') or 'see its license file'}")
        found = license_texts(p)
        if not found:
            missing.append(label)
        for name, text in found:
            body = normalized(text)
            # Texts that differ only in spacing (re-wrapped copies of one license) share a key.
            key = hashlib.sha256(" ".join(body.split()).encode()).hexdigest()
            texts.setdefault(key, (body, []))[1].append(f"{label} ({name})")
    if missing:
        lines += [
            "",
            "These crates carry no license file in their published package; their license is the",
            "SPDX expression above, whose standard text is among those below:",
            "",
            *(f"  {label}" for label in missing),
        ]
    for body, carriers in sorted(texts.values(), key=lambda t: (-len(t[1]), t[1][0])):
        lines += ["", "=" * 100, "", "The following text is carried by:", ""]
        lines += [f"  {c}" for c in carriers]
        lines += ["", "-" * 100, "", body]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if THIRD-PARTY-NOTICES is stale")
    args = parser.parse_args()
    notices = render(bundled_packages(cargo_metadata()))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != notices:
            print(
                "THIRD-PARTY-NOTICES is stale (the dependencies changed): run "
                "`python3 scripts/third_party_notices.py` and commit it",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(notices, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
