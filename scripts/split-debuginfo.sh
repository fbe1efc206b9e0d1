#!/usr/bin/env bash
# Ships small binaries and keeps their debug info apart, as distributions do: for each release
# binary BIN, writes DIST/<name> with every symbol and debug section stripped and a
# .gnu_debuglink naming DIST/<name>.debug, which holds the debug info and symbols
# (objcopy --only-keep-debug). A crash address from a shipped binary is symbolized with the
# .debug file of the same build (gdb and addr2line find it next to the binary or under
# /usr/lib/debug). Used by .github/workflows/release.yml.
#
#   scripts/split-debuginfo.sh DIST target/release/relay-edge target/release/relay-server ...
#
# Needs objcopy (Debian: binutils). Exit 2 on a bad argument or a missing tool.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 DIST BIN..." >&2
    exit 2
fi
if ! command -v objcopy >/dev/null 2>&1; then
    echo "split-debuginfo: objcopy is not installed (Debian: apt-get install -y binutils)" >&2
    exit 2
fi
dist=$1
shift
mkdir -p -- "$dist"
for bin in "$@"; do
    if [[ ! -f "$bin" ]]; then
        echo "split-debuginfo: $bin is not a file" >&2
        exit 2
    fi
    name=$(basename -- "$bin")
    objcopy --only-keep-debug -- "$bin" "$dist/$name.debug"
    chmod 0644 "$dist/$name.debug"
    # The link records the .debug file's name and CRC; the stripped copy keeps the build id.
    objcopy --strip-all --add-gnu-debuglink="$dist/$name.debug" -- "$bin" "$dist/$name"
    chmod 0755 "$dist/$name"
    printf '%s: %s bytes -> %s bytes stripped + %s bytes in %s.debug\n' "$name" \
        "$(stat -c %s -- "$bin")" "$(stat -c %s -- "$dist/$name")" \
        "$(stat -c %s -- "$dist/$name.debug")" "$name"
done
