#!/usr/bin/env bash
# Does what a user does with a Shoal checkout, in a temporary directory, and fails if any of it
# does not work (scripts/test.sh runs it; needs a C and C++ compiler, pkg-config, cmake, Python
# 3 with venv, and pip's package index for setuptools):
#
# 1. scripts/install.sh PREFIX (a release build) and the files a consumer needs are there: the
#    SONAME symlink, pkg-config and CMake files, the Swift module map and the Kotlin .def
#    pointing at the installed header and library;
# 2. tests/install/hello.c and hello.cpp built with `pkg-config --cflags --libs shoal`, and
#    tests/install/cmake (find_package(Shoal): Shoal::shoal and Shoal::shoal_static) built with
#    CMake; each runs, the dynamic ones loading libshoal.so.<compat> (their NEEDED entry) from
#    PREFIX/lib through LD_LIBRARY_PATH;
# 3. a fresh virtualenv, `pip install ./bindings/python` (the wheel's build reuses the release
#    build of step 1), and tests/install/python_sync.py run from outside the repository with no
#    SHOAL_* variable: a realm synced through a shoal-server.
#
# Prints the installed sizes (stripped shared library, static library, wheel). SHOAL_KEEP_INSTALL=1
# keeps the temporary directory (its path is printed).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
work="$(mktemp -d "${TMPDIR:-/tmp}/shoal-install-check.XXXXXX")"
if [ "${SHOAL_KEEP_INSTALL:-0}" = 1 ]; then
    echo "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
prefix="$work/prefix"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in
/*) ;;
*) target_dir="$repo/$target_dir" ;;
esac
started=$SECONDS

fail() {
    echo "check_install: $*" >&2
    exit 1
}
step_started=""
# Prints the time the step before took, then the next step's title.
step() {
    if [ -n "$step_started" ]; then echo "   ($((SECONDS - step_started)) s)"; fi
    step_started=$SECONDS
    echo "== $*"
}

step "scripts/install.sh $prefix (a release build)"
bash scripts/install.sh "$prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log" >&2
    fail "scripts/install.sh failed"
}
version="$(sed -n 's/^#define SHOAL_VERSION "\(.*\)"$/\1/p' include/shoal.h)"
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
if [ "$major" = 0 ]; then soname="libshoal.so.0.$minor"; else soname="libshoal.so.$major"; fi
for f in include/shoal/shoal.h include/shoal/shoal.hpp include/shoal/module.modulemap \
    "lib/libshoal.so.$version" lib/libshoal.a lib/pkgconfig/shoal.pc \
    lib/cmake/Shoal/ShoalConfig.cmake lib/cmake/Shoal/ShoalConfigVersion.cmake \
    share/shoal/kotlin/shoal.def share/doc/shoal/LICENSE share/doc/shoal/THIRD-PARTY-NOTICES; do
    [ -f "$prefix/$f" ] || fail "install.sh did not install $f"
done
[ "$(readlink "$prefix/lib/$soname")" = "libshoal.so.$version" ] || fail "$soname is not a link to libshoal.so.$version"
[ "$(readlink "$prefix/lib/libshoal.so")" = "$soname" ] || fail "libshoal.so is not a link to $soname"
readelf -d "$prefix/lib/libshoal.so.$version" | grep -q "Library soname: \[$soname\]" ||
    fail "the installed library's SONAME is not $soname"
if readelf -S "$prefix/lib/libshoal.so.$version" | grep -q '\.debug_\|\.symtab'; then
    fail "the installed shared library is not stripped"
fi
# The Kotlin/Native definition points at the installed header and library.
def="$prefix/share/shoal/kotlin/shoal.def"
grep -qx "compilerOpts = -I$prefix/include/shoal" "$def" || fail "shoal.def does not point at $prefix/include/shoal"
grep -qx "linkerOpts = -L$prefix/lib -lshoal" "$def" || fail "shoal.def does not link $prefix/lib/libshoal"
grep -q "@[A-Z_]*@" "$def" "$prefix/lib/pkgconfig/shoal.pc" "$prefix"/lib/cmake/Shoal/*.cmake &&
    fail "a placeholder was left unfilled"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion shoal)" = "$version" ] || fail "pkg-config reports $(pkg-config --modversion shoal)"
cflags="$(pkg-config --cflags shoal)"
libs="$(pkg-config --libs shoal)"
echo "pkg-config --cflags --libs shoal: $cflags $libs"

# Runs a dynamically linked program the way an installed one runs: it names the SONAME, and
# the loader finds that name in PREFIX/lib.
run_dynamic() {
    local exe="$1"
    shift
    readelf -d "$exe" | grep -q "NEEDED.*\[$soname\]" || fail "$(basename "$exe") does not record $soname"
    LD_LIBRARY_PATH="$prefix/lib" ldd "$exe" | grep -q "$soname => $prefix/lib/$soname" ||
        fail "$(basename "$exe") does not load $prefix/lib/$soname"
    LD_LIBRARY_PATH="$prefix/lib" "$exe" "$@"
}

step "C and C++ programs through pkg-config"
mkdir -p "$work/c" "$work/cpp"
# shellcheck disable=SC2086 # the flags are words
${CC:-cc} -std=c11 -Wall -Wextra -Werror tests/install/hello.c $cflags $libs -o "$work/hello_c"
# shellcheck disable=SC2086
${CXX:-c++} -std=c++17 -Wall -Wextra -Werror -pedantic tests/install/hello.cpp $cflags $libs -o "$work/hello_cpp"
run_dynamic "$work/hello_c" "$work/c"
run_dynamic "$work/hello_cpp" "$work/cpp"

step "a C++ project through CMake find_package(Shoal)"
cmake -S tests/install/cmake -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || {
    cat "$work/cmake.log" >&2
    fail "cmake could not configure tests/install/cmake"
}
cmake --build "$work/cmake-build" -j 2 >>"$work/cmake.log" 2>&1 || {
    cat "$work/cmake.log" >&2
    fail "cmake could not build tests/install/cmake"
}
run_dynamic "$work/cmake-build/count_shared"
readelf -d "$work/cmake-build/count_static" | grep -q "NEEDED.*libshoal" && fail "count_static links libshoal dynamically"
"$work/cmake-build/count_static"

step "a fresh virtualenv: pip install ./bindings/python, a synced realm"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check ./bindings/python \
    >"$work/pip.log" 2>&1 || {
    cat "$work/pip.log" >&2
    fail "pip install ./bindings/python failed"
}
"$work/venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --wheel-dir "$work/wheel" ./bindings/python >>"$work/pip.log" 2>&1 || {
    cat "$work/pip.log" >&2
    fail "pip wheel ./bindings/python failed"
}
server="$target_dir/debug/shoal-server"
if [ ! -x "$server" ]; then
    cargo build --locked -p shoal-server
fi
# As a user runs it: from elsewhere, without SHOAL_*, PYTHONPATH or LD_LIBRARY_PATH.
(cd "$work" && env -i PATH="$PATH" HOME="$HOME" TMPDIR="${TMPDIR:-/tmp}" \
    "$work/venv/bin/python" "$repo/tests/install/python_sync.py" "$server")

wheel="$(ls "$work"/wheel/shoal-*.whl)"
step "sizes"
printf '  %-40s %10s bytes\n' "lib/libshoal.so.$version (stripped)" "$(stat -c %s "$prefix/lib/libshoal.so.$version")"
printf '  %-40s %10s bytes\n' "lib/libshoal.a (debug info stripped)" "$(stat -c %s "$prefix/lib/libshoal.a")"
printf '  %-40s %10s bytes\n' "$(basename "$wheel")" "$(stat -c %s "$wheel")"
echo "install check passed in $((SECONDS - started)) s"
