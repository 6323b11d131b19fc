#!/usr/bin/env bash
# Builds memcached from Debian's source packages, one binary per suite, for
# the version matrix of the test suite and the benchmark.
#
# Usage: scripts/memcached-versions.sh [SUITE ...]   (default: trixie sid)
#
# A SUITE ending in -proxy (sid-proxy) is that suite's memcached built with
# its proxy (--enable-proxy, the Lua the tarball vendors), for the jump
# placement's tests.
#
# For each suite it prints one line, "SUITE VERSION PATH", where PATH is
# target/memcached/SUITE/memcached. A binary already built there is reused
# (delete target/memcached to pick up a newer sid). Everything is fetched
# with apt from the machine's own Debian mirror, through a private apt
# configuration under target/, so the machine's apt sources are not touched:
#   apt-get source --download-only memcached/SUITE  →  the upstream tarball
#   ./configure && make memcached                    →  about 15 s on 2 cores
# Build needs: a C compiler, make, libevent-dev and pkg-config (installed
# when missing). Environment: MEMCACHED_CONFIGURE_FLAGS adds configure flags.
set -euo pipefail
cd "$(dirname "$0")/.."

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(trixie sid)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
say() { echo "memcached-versions: $*" >&2; }

root=$PWD/target/memcached
mkdir -p "$root"

need_build=()
for suite in "${suites[@]}"; do
    [ -x "$root/$suite/memcached" ] || need_build+=("$suite")
done

if [ ${#need_build[@]} -gt 0 ]; then
    missing=()
    command -v cc >/dev/null || missing+=(gcc libc6-dev)
    command -v make >/dev/null || missing+=(make)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    dpkg-query -W -f='${Status}' libevent-dev 2>/dev/null | grep -q 'install ok installed' || missing+=(libevent-dev)
    command -v xz >/dev/null || missing+=(xz-utils)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

    # The machine's Debian mirror: the first URI that serves Debian's main
    # archive (not -security), from deb822 .sources or one-line .list files.
    mirror=$(
        {
            cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
        } | grep -E '/debian/?$' | grep -v security | head -n 1
    ) || true
    if [ -z "$mirror" ]; then
        say "no Debian mirror found in /etc/apt/sources.list{,.d}: cannot fetch memcached's source" >&2
        exit 1
    fi

    apt_dir=$root/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    {
        echo "Types: deb-src"
        echo "URIs: $mirror"
        echo "Suites: $(printf '%s\n' "${need_build[@]%-proxy}" | sort -u | tr '\n' ' ')"
        echo "Components: main"
        echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    } >"$apt_dir/memcached-src.sources"
    apt_opts=(
        -o "Dir::Etc::SourceList=$apt_dir/memcached-src.sources"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o "APT::Sandbox::User=root"
    )
    say "reading source indexes of ${need_build[*]} from $mirror"
    apt-get "${apt_opts[@]}" update -qq >"$apt_dir/update.log" 2>&1 || {
        cat "$apt_dir/update.log" >&2
        say "apt-get update of the deb-src lines failed" >&2
        exit 1
    }

    for suite in "${need_build[@]}"; do
        work=$root/$suite/src
        rm -rf "$work"
        mkdir -p "$work"
        # The .dsc is not needed: apt checks every file it fetches against
        # the hashes in the signed Sources index, and only the upstream
        # tarball is built. So a mirror that lacks the .dsc is no failure.
        (cd "$work" && apt-get "${apt_opts[@]}" source --download-only "memcached/${suite%-proxy}") >"$work/fetch.log" 2>&1 || true
        tarball=$(find "$work" -maxdepth 1 -name 'memcached_*.orig.tar.*' | head -n 1)
        if [ -z "$tarball" ]; then
            cat "$work/fetch.log" >&2
            say "no memcached upstream tarball for $suite" >&2
            exit 1
        fi
        say "building $(basename "$tarball")"
        tar -xf "$tarball" -C "$work"
        dir=$(find "$work" -maxdepth 1 -type d -name 'memcached-*' | head -n 1)
        flags=${MEMCACHED_CONFIGURE_FLAGS:-}
        vendor=true
        if [ "$suite" != "${suite%-proxy}" ]; then
            flags="$flags --enable-proxy"
            vendor="make -C vendor -j$(nproc)" # the bundled Lua, linked in
        fi
        # shellcheck disable=SC2086 # the flags are words
        if ! (cd "$dir" && ./configure $flags && $vendor && make -j"$(nproc)" memcached) >"$work/build.log" 2>&1; then
            tail -n 30 "$work/build.log" >&2
            say "building memcached for $suite failed (log: $work/build.log)" >&2
            exit 1
        fi
        cp "$dir/memcached" "$root/$suite/memcached"
        # memcached-tool, for the benchmark's peer row on this version.
        cp "$dir/scripts/memcached-tool" "$root/$suite/memcached-tool" 2>/dev/null || true
        rm -rf "$dir"
    done
fi

for suite in "${suites[@]}"; do
    version=$("$root/$suite/memcached" -V | awk '{ print $2 }')
    echo "$suite $version $root/$suite/memcached"
done
