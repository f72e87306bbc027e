#!/bin/sh
# Installs the built tree into a temporary prefix, then builds and runs samples/example.c against
# it twice: with CMake's find_package(clattn) and with pkg-config.
# Usage: run.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1; src=$2; work=$3
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libclattn.so' -printf '%h\n' | head -1)

echo "== find_package(clattn)"
cmake -S "$src/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DEXAMPLE_SOURCE="$src/samples/example.c" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/example_cmake"
"$work/consumer/example_cmake_static"

echo "== pkg-config clattn"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists --print-errors clattn
# shellcheck disable=SC2046
cc -std=c11 -o "$work/example_pc" "$src/samples/example.c" $(pkg-config --cflags --libs clattn) -lm
LD_LIBRARY_PATH="$libdir" "$work/example_pc"
# shellcheck disable=SC2046
cc -std=c11 -o "$work/example_pc_static" "$src/samples/example.c" \
   $(pkg-config --static --cflags clattn) "$libdir/libclattn.a" $(pkg-config --static --libs-only-l clattn | sed 's/-lclattn//') -lm
"$work/example_pc_static"
echo "install test: ok"
