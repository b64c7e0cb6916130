#!/usr/bin/env bash
# Build the floor server (benches/floor/floor.c) with gcc and liburing; installs Debian's
# liburing-dev if its header is missing. Prints the binary's path.
#
#   bash benches/floor/build.sh [OUT]      # default OUT: target/floor/floor
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/floor/floor}"
if [ ! -f /usr/include/liburing.h ]; then
  echo "installing liburing-dev" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liburing-dev >&2
fi
mkdir -p "$(dirname "$out")"
gcc -O2 -g -Wall -Wextra -Wno-unused-parameter -o "$out" "$here/floor.c" -luring
echo "$out"
