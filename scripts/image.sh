#!/usr/bin/env bash
# Builds Astaire's container image (issue 31) from the release binary built
# here and the libraries `ldd` lists for it: FROM scratch, no base image
# pulled. Then, with --check, runs the real binary inside the image against
# a memcached on loopback and probes /readyz and /metrics.
#
# Usage: scripts/image.sh [--check]
#   Builds target/image/{rootfs,state}, then
#     buildah build --storage-driver vfs --isolation chroot \
#       -f packaging/container/Containerfile -t localhost/astaire:VERSION
#   and saves it as target/image/astaire-VERSION.oci.tar (oci-archive).
#   --check runs it with podman (host network, vfs storage); where the
#   kernel refuses podman a container (no user namespaces, no cgroups), it
#   says so and runs the image's own unpacked root file system with chroot
#   as user 10001 instead. Needs root (buildah's vfs storage, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
check=
[ "${1:-}" = --check ] && check=1

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
tag=localhost/astaire:$version
out=target/image
storage=(--storage-driver vfs)

cargo build --release --quiet --bin astaire
rm -rf "$out/rootfs" "$out/state"
mkdir -p "$out/rootfs/usr/bin" "$out/rootfs/etc/clearwater" "$out/state/run/astaire" "$out/state/var/lib/astaire" \
    "$out/rootfs/tmp"
chmod 1777 "$out/rootfs/tmp"
chmod 0700 "$out/state/run/astaire" "$out/state/var/lib/astaire"
# The binary without its debug sections (the release profile keeps line
# tables for backtraces on the host: 51 MB against 8 MB).
strip --strip-debug -o "$out/rootfs/usr/bin/astaire" target/release/astaire
# Every library the dynamic linker loads for it, at the same path (the
# loader itself included); nothing else of the host.
ldd target/release/astaire | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' | while read -r lib; do
    mkdir -p "$out/rootfs$(dirname "$lib")"
    cp -L "$lib" "$out/rootfs$lib"
done
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nastaire:x:10001:10001:Astaire:/var/lib/astaire:/usr/sbin/nologin\n' \
    >"$out/rootfs/etc/passwd"
printf 'root:x:0:\nastaire:x:10001:\n' >"$out/rootfs/etc/group"
# Host names (a StatefulSet's pod names) through /etc/hosts, then DNS:
# glibc 2.34 and later have both built in, the runtime mounts the files.
printf 'hosts: files dns\n' >"$out/rootfs/etc/nsswitch.conf"

cp packaging/container/Containerfile "$out/Containerfile"
buildah "${storage[@]}" build --quiet --isolation chroot -f "$out/Containerfile" -t "$tag" "$out" >/dev/null
rm -f "$out"/astaire-*.oci.tar
buildah "${storage[@]}" push --quiet "$tag" "oci-archive:$out/astaire-$version.oci.tar:$tag"
size=$(buildah "${storage[@]}" images --format '{{.Size}}' "$tag")
echo "image: $tag, $size ($(du -h "$out/astaire-$version.oci.tar" | cut -f1) as $out/astaire-$version.oci.tar)"
echo "image: files: $(cd "$out/rootfs" && find . -type f | sort | tr '\n' ' ')"

[ -n "$check" ] || exit 0

# --- The real binary inside the image, against memcached on loopback. ---
work=$(mktemp -d)
mc_pid= run_pid=
cleanup() {
    [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null || true
    [ -n "$mc_pid" ] && kill "$mc_pid" 2>/dev/null || true
    podman "${storage[@]}" rm -f astaire-image-check >/dev/null 2>&1 || true
    mountpoint -q "$work/root/proc" 2>/dev/null && umount "$work/root/proc"
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mc_port=$(free_port)
metrics_port=$(free_port)
memcached -l 127.0.0.1 -p "$mc_port" -U 0 -u nobody -m 64 &
mc_pid=$!
mkdir -p "$work/config"
echo "servers=127.0.0.1:$mc_port" >"$work/config/cluster_settings"
chmod 755 "$work" "$work/config"
chmod 644 "$work/config/cluster_settings"
args=(--local-name "127.0.0.1:$mc_port" --cluster-settings /etc/clearwater/cluster_settings --no-agentx
    --pd-log none --alarm-agent none --nice 0 --metrics-listen "127.0.0.1:$metrics_port")

# Limits within any host's hard ones: podman's default (nofile=1048576) is
# refused where the hard limit is lower.
limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
how=
if podman "${storage[@]}" run --rm --network host "${limits[@]}" "$tag" --version >"$work/podman.log" 2>&1; then
    how=podman
    podman "${storage[@]}" run --rm --name astaire-image-check --network host "${limits[@]}" \
        -v "$work/config:/etc/clearwater:ro" "$tag" "${args[@]}" >"$work/daemon.log" 2>&1 &
    run_pid=$!
else
    echo "image: podman cannot run a container here: $(tail -n 1 "$work/podman.log")" >&2
    echo "image: running the image's unpacked root file system with chroot instead (user 10001)" >&2
    how=chroot
    mkdir -p "$work/root"
    # The image's layers, as the image holds them.
    ctr=$(buildah "${storage[@]}" from --quiet "$tag")
    mnt=$(buildah "${storage[@]}" mount "$ctr")
    cp -a "$mnt/." "$work/root/"
    buildah "${storage[@]}" umount "$ctr" >/dev/null
    buildah "${storage[@]}" rm "$ctr" >/dev/null
    mkdir -p "$work/root/proc" "$work/root/etc/clearwater"
    cp "$work/config/cluster_settings" "$work/root/etc/clearwater/cluster_settings"
    mount -t proc proc "$work/root/proc"
    chroot --userspec=10001:10001 "$work/root" /usr/bin/astaire daemon "${args[@]}" >"$work/daemon.log" 2>&1 &
    run_pid=$!
fi

ready=
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$metrics_port/readyz" >"$work/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    cat "$work/daemon.log" >&2
    echo "image: the daemon in the image never answered /readyz 200 ($how)" >&2
    exit 1
fi
curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics"
grep -q "^astaire_build_info{version=\"$version\"} 1" "$work/metrics"
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$(pgrep -n -f "astaire daemon --local-name 127.0.0.1:$mc_port")/status")
if [ "$uid" != 10001 ]; then
    echo "image: the daemon runs as uid $uid, not 10001" >&2
    exit 1
fi
echo "image: the binary in the image ($how) answered: $(cat "$work/readyz" | tr -d '\n'); runs as uid $uid; $(grep -c '^astaire_' "$work/metrics") astaire samples"
