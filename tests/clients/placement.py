#!/usr/bin/python3
"""The client libraries' side of the placement tests (tests/placement.rs).

Writes keys through the real client library with one server list, reads
them back with another, and says where the library itself puts each key:
pylibmc (libmemcached weighted ketama) and pymemcache's HashClient
(rendezvous). Run with Debian's python3, which has python3-pylibmc and
python3-pymemcache.

  placement.py write  SCHEME SERVERS COUNT TAG   write COUNT keys, values TAG:i
  placement.py read   SCHEME SERVERS COUNT TAG   read back the keys whose
                                                 indexes stdin lists: JSON counts
  placement.py owners SCHEME SERVERS COUNT       the library's server per key
  placement.py race   SCHEME OLD NEW COUNT SECONDS [new-only]
        clients during a resize, under the documented protocol: the keys
        stdin lists, in a shuffled order, each once, spread evenly over
        SECONDS, are rewritten (v2:i) on their new owner or deleted on
        both owners (with new-only: on the new owner only, which the
        protocol forbids), until the file $PLACEMENT_STOP_FILE exists;
        prints each touched key's state (JSON: index → "v2" or null)
  placement.py check  SCHEME SERVERS COUNT       reads "index expected" lines
        (expected: a tag, or - for absent): JSON counts of stale and revived

SERVERS is comma-separated host:port[:weight] (weights: ketama only).
"""
import json
import os
import sys


def keys(count):
    # Mostly ASCII; every tenth key non-ASCII, which pymemcache hashes by
    # code point, not as the UTF-8 the server stores.
    for i in range(count):
        yield f"ключ:{i}" if i % 10 == 7 else f"user:{i}@example.com"


def client(scheme, servers):
    if scheme == "ketama":
        import pylibmc
        return pylibmc.Client(servers, behaviors={"ketama_weighted": True})
    if scheme == "rendezvous":
        from pymemcache.client.hash import HashClient
        nodes = []
        for s in servers:
            host, port = s.rsplit(":", 1)
            nodes.append((host, int(port)))
        # PLACEMENT_KEY_PREFIX: pymemcache's key_prefix, stored with each
        # key but not hashed.
        prefix = os.environ.get("PLACEMENT_KEY_PREFIX", "").encode()
        return HashClient(nodes, allow_unicode_keys=True, connect_timeout=5, timeout=5, key_prefix=prefix)
    raise SystemExit(f"unknown scheme {scheme}")


def owner(scheme, c, servers, key):
    if scheme == "ketama":
        return c.hash(key)
    return [f"{h}:{p}" for h, p in (s.rsplit(":", 1) for s in servers)].index(c.hasher.get_node(key))


def race(scheme, old, new, count, seconds, both=True):
    """A client that knows both lists: writes go to the new owner, deletes
    to both owners (what mcrouter's MigrateRoute does).

    Each key is touched once at most, so its last state is the only one a
    client gave it: a copy that overwrote it, or brought it back, after
    that touch is seen in the read-back, not hidden by a later touch. The
    touches are spread over `seconds` (the libraries would otherwise touch
    every key before a copy starts), and stop when the copies have (the
    stop file): none comes after every copy has ended."""
    import random
    import time
    names = list(keys(count))
    moving = [int(line) for line in sys.stdin if line.strip()]
    before, after = client(scheme, old), client(scheme, new)
    last = {}
    rng = random.Random(20)
    rng.shuffle(moving)
    stop = os.environ.get("PLACEMENT_STOP_FILE")
    start, interval = time.monotonic(), seconds / max(len(moving), 1)
    for n, i in enumerate(moving):
        if n % 20 == 0 and stop and os.path.exists(stop):
            break
        ahead = start + n * interval - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        if rng.random() < 0.5:
            after.set(names[i], f"v2:{i}".encode())
            last[i] = "v2"
        else:
            after.delete(names[i])
            if both:
                before.delete(names[i])
            last[i] = None
    print(json.dumps(last))


def main(argv):
    command, scheme, servers = argv[1], argv[2], argv[3].split(",")
    if command == "race":
        both = len(argv) < 8 or argv[7] != "new-only"
        return race(scheme, servers, argv[4].split(","), int(argv[5]), float(argv[6]), both)
    count = int(argv[4])
    c = client(scheme, servers)
    if command == "write":
        tag = argv[5]
        for i, k in enumerate(keys(count)):
            if not c.set(k, f"{tag}:{i}".encode()):
                raise SystemExit(f"set {k} failed")
    elif command == "read":
        tag = argv[5]
        hit, missing, wrong = 0, [], []
        wanted = {int(line) for line in sys.stdin if line.strip()}
        for i, k in enumerate(keys(count)):
            if i not in wanted:
                continue
            v = c.get(k)
            if v is None:
                missing.append(k)
            elif v != f"{tag}:{i}".encode():
                wrong.append(k)
            else:
                hit += 1
        print(json.dumps({"hit": hit, "missing": len(missing), "wrong": len(wrong), "first_missing": missing[:5]}))
    elif command == "check":
        names = list(keys(count))
        stale, revived, ok = [], [], 0
        for line in sys.stdin:
            if not line.strip():
                continue
            i, expected = line.split()
            k = names[int(i)]
            v = c.get(k)
            if expected == "-":
                if v is not None:
                    revived.append(k)
                else:
                    ok += 1
            elif v != f"{expected}:{i}".encode():
                stale.append((k, v.decode() if v is not None else None))
            else:
                ok += 1
        print(json.dumps({"ok": ok, "stale": len(stale), "revived": len(revived),
                          "first_stale": stale[:5], "first_revived": revived[:5]}))
    elif command == "owners":
        for k in keys(count):
            print(owner(scheme, c, servers, k))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
