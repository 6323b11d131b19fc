#!/usr/bin/python3
"""The client side of tests/families.rs (issue 30).

libmemcached's default placement (modula, one-at-a-time) through the real
pylibmc, whose Client(servers) sets no behaviors; and, for Dalli and
gomemcache, an owner oracle written here from
shared/spec/placement-clients.md alone (never from Astaire's code). Their
real libraries drive tests/libraries.rs.

  families.py write  libmemcached SERVERS COUNT TAG   write COUNT typed values
  families.py read   libmemcached SERVERS COUNT TAG   JSON: hit, missing, wrong
  families.py owners SCHEME SERVERS COUNT             the server index per key
      (libmemcached: the library's own Client.hash; dalli, gomemcache: the
      oracle)

SERVERS is comma-separated host:port[:weight]. Keys are bytes: ASCII,
UTF-8 and bytes that are not UTF-8 (which libmemcached hashes through a
signed char on x86-64).
"""
import hashlib
import json
import sys
import zlib


def keys(count):
    for i in range(count):
        if i % 10 == 3:
            yield f"ключ:{i}".encode()
        elif i % 10 == 7:
            yield b"\xff\xfe:" + str(i).encode()
        else:
            yield f"user:{i}@example.com".encode()


def value(tag, i):
    """A typed value: pylibmc keeps the type in the item's flags."""
    kind = i % 3
    if kind == 0:
        return f"{tag}:{i}".encode()
    if kind == 1:
        return f"{tag}:{i}:é"
    return i * 7 + len(tag)


def pylibmc_client(servers):
    import pylibmc
    names = [s.rsplit(":", 1)[0] if s.count(":") == 2 else s for s in servers]
    return pylibmc.Client(names)


def dalli_owner(servers, key):
    """Dalli::Ring: SHA1 points of host:port:j, CRC32 key, floor lookup."""
    parsed = []
    for s in servers:
        parts = s.split(":")
        weight = int(parts[2]) if len(parts) == 3 else 1
        parsed.append((f"{parts[0]}:{parts[1]}", weight))
    if len(parsed) == 1:
        return 0
    total = sum(w for _, w in parsed)
    ring = []
    for index, (name, weight) in enumerate(parsed):
        for j in range(int((len(parsed) * 160 * weight) / float(total))):
            point = int(hashlib.sha1(f"{name}:{j}".encode()).hexdigest()[:8], 16)
            ring.append((point, index))
    ring.sort()
    h = zlib.crc32(key)
    below = [s for p, s in ring if p <= h]
    return below[-1] if below else ring[-1][1]


def owners(scheme, servers, count):
    if scheme == "libmemcached":
        c = pylibmc_client(servers)
        return [c.hash(k) for k in keys(count)]
    if scheme == "dalli":
        # The ring is built once; a key's owner is a bisection.
        import bisect
        parsed = [(":".join(s.split(":")[:2]), int(s.split(":")[2]) if s.count(":") == 2 else 1) for s in servers]
        total = sum(w for _, w in parsed)
        ring = sorted(
            (int(hashlib.sha1(f"{name}:{j}".encode()).hexdigest()[:8], 16), index)
            for index, (name, weight) in enumerate(parsed)
            for j in range(int((len(parsed) * 160 * weight) / float(total)))
        )
        points = [p for p, _ in ring]
        out = []
        for k in keys(count):
            at = bisect.bisect_right(points, zlib.crc32(k)) - 1
            out.append(ring[at][1])
        # The plain reading of the spec agrees with the bisection.
        assert all(dalli_owner(servers, k) == o for k, o in list(zip(keys(count), out))[:200])
        return out
    if scheme == "gomemcache":
        return [zlib.crc32(k[:256]) % len(servers) if len(servers) > 1 else 0 for k in keys(count)]
    raise SystemExit(f"unknown scheme {scheme}")


def main():
    command, scheme, servers, count = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    if command == "owners":
        print("\n".join(str(o) for o in owners(scheme, servers, count)))
        return
    if scheme != "libmemcached":
        raise SystemExit(f"{command}: the library of {scheme} is not here")
    tag = sys.argv[5]
    c = pylibmc_client(servers)
    if command == "write":
        for i, k in enumerate(keys(count)):
            if not c.set(k, value(tag, i)):
                raise SystemExit(f"set {k!r} failed")
        return
    if command == "read":
        hit = missing = wrong = 0
        for i, k in enumerate(keys(count)):
            got = c.get(k)
            want = value(tag, i)
            if got is None:
                missing += 1
            elif got != want or type(got) is not type(want):
                wrong += 1
            else:
                hit += 1
        print(json.dumps({"hit": hit, "missing": missing, "wrong": wrong}))
        return
    raise SystemExit(f"unknown command {command}")


main()
