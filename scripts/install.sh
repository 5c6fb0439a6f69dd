#!/usr/bin/env bash
# Installs Shoal's C library with everything C, C++, Swift and Kotlin/Native programs need,
# under PREFIX:
#
#   include/shoal/shoal.h, shoal.hpp       the C header and the header-only C++17 binding
#   include/shoal/module.modulemap         Swift: `import Shoal` with -I PREFIX/include/shoal
#   lib/libshoal.so.X.Y.Z                  the shared library (SONAME libshoal.so.<compat>)
#   lib/libshoal.so.<compat> -> ...        the name programs record and the loader looks for
#   lib/libshoal.so -> libshoal.so.<compat>   what -lshoal links against
#   lib/libshoal.a                         the static library
#   lib/pkgconfig/shoal.pc                 pkg-config --cflags --libs shoal
#   lib/cmake/Shoal/                       find_package(Shoal) -> Shoal::shoal, Shoal::shoal_static
#   share/shoal/kotlin/shoal.def           Kotlin/Native cinterop
#   share/doc/shoal/                       LICENSE, THIRD-PARTY-NOTICES
#
# <compat> is the part of the version that changes on a breaking change: 0.1 for 0.1.z, 1 for
# 1.y.z (see build.rs). The libraries are stripped (no debug information, no symbol table;
# the exported functions stay).
#
# Usage: scripts/install.sh PREFIX        e.g. /usr/local, "$HOME/.local", /opt/shoal
#
# For Linux and other ELF systems (the SONAME, the .so names); needs cargo, coreutils' install,
# sed, and binutils' strip and readelf (installed with gcc).
#
# Builds the release library first (`cargo build --release -p shoal --lib`: nothing to do when
# it is current) in $CARGO_TARGET_DIR or target/. $DESTDIR stages the files for a package
# (they go to $DESTDIR$PREFIX and name $PREFIX inside). $STRIP names the strip to run.
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$1"
case "$prefix" in
/*) ;;
*) prefix="$(pwd)/$prefix" ;;
esac
prefix="${prefix%/}"
root="${DESTDIR:-}$prefix"

version="$(sed -n 's/^#define SHOAL_VERSION "\(.*\)"$/\1/p' "$repo/include/shoal.h")"
if [ -z "$version" ]; then
    echo "install.sh: no SHOAL_VERSION in include/shoal.h" >&2
    exit 1
fi
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
if [ "$major" = 0 ]; then compat="0.$minor"; else compat="$major"; fi
soname="libshoal.so.$compat"

echo "== building the release library"
(cd "$repo" && cargo build --release --locked -p shoal --lib)
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in
/*) ;;
*) target_dir="$repo/$target_dir" ;;
esac
built="$target_dir/release"
for f in libshoal.so libshoal.a; do
    if [ ! -f "$built/$f" ]; then
        echo "install.sh: cargo built no $built/$f" >&2
        exit 1
    fi
done
if command -v readelf >/dev/null 2>&1; then
    built_soname="$(readelf -d "$built/libshoal.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
    if [ "$built_soname" != "$soname" ]; then
        echo "install.sh: $built/libshoal.so has SONAME '$built_soname', expected $soname (build.rs)" >&2
        exit 1
    fi
fi

# Escapes a value for the right-hand side of a sed substitution.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
# Copies template $1 to $2, filling in the @NAME@ placeholders.
fill() {
    sed -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
        -e "s|@INCLUDEDIR@|$(sed_escape "$prefix/include/shoal")|g" \
        -e "s|@LIBDIR@|$(sed_escape "$prefix/lib")|g" \
        -e "s|@VERSION@|$version|g" \
        -e "s|@COMPAT@|$compat|g" \
        -e "s|@SIZEOF_VOID_P@|$(($(getconf LONG_BIT) / 8))|g" \
        "$1" >"$2"
    chmod 644 "$2"
}
strip_tool="${STRIP:-strip}"
if ! command -v "$strip_tool" >/dev/null 2>&1; then
    echo "install.sh: no '$strip_tool': installing the libraries unstripped" >&2
    strip_tool=""
fi

echo "== installing Shoal $version into $root"
install -d "$root/include/shoal" "$root/lib/pkgconfig" "$root/lib/cmake/Shoal" \
    "$root/share/shoal/kotlin" "$root/share/doc/shoal"
install -m 644 "$repo/include/shoal.h" "$repo/bindings/cpp/shoal.hpp" \
    "$repo/bindings/swift/module.modulemap" "$root/include/shoal/"

install -m 755 "$built/libshoal.so" "$root/lib/libshoal.so.$version"
install -m 644 "$built/libshoal.a" "$root/lib/libshoal.a"
if [ -n "$strip_tool" ]; then
    # --strip-unneeded keeps the dynamic symbols of the shared library (its API) and the
    # symbols the static library's objects link by.
    "$strip_tool" --strip-unneeded "$root/lib/libshoal.so.$version"
    "$strip_tool" --strip-debug "$root/lib/libshoal.a"
fi
ln -sfn "libshoal.so.$version" "$root/lib/$soname"
ln -sfn "$soname" "$root/lib/libshoal.so"

fill "$repo/packaging/shoal.pc.in" "$root/lib/pkgconfig/shoal.pc"
fill "$repo/packaging/ShoalConfig.cmake.in" "$root/lib/cmake/Shoal/ShoalConfig.cmake"
fill "$repo/packaging/ShoalConfigVersion.cmake.in" "$root/lib/cmake/Shoal/ShoalConfigVersion.cmake"
fill "$repo/bindings/kotlin/shoal.def.in" "$root/share/shoal/kotlin/shoal.def"
install -m 644 "$repo/LICENSE" "$repo/THIRD-PARTY-NOTICES" "$root/share/doc/shoal/"

echo "installed:"
(cd "$root" && find . -type f -o -type l | sort | sed 's|^\./|  '"$root"'/|')
