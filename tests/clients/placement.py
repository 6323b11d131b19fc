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

SERVERS is comma-separated host:port[:weight] (weights: ketama only).
"""
import json
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
        return HashClient(nodes, allow_unicode_keys=True, connect_timeout=5, timeout=5)
    raise SystemExit(f"unknown scheme {scheme}")


def owner(scheme, c, servers, key):
    if scheme == "ketama":
        return c.hash(key)
    return [f"{h}:{p}" for h, p in (s.rsplit(":", 1) for s in servers)].index(c.hasher.get_node(key))


def main(argv):
    command, scheme, servers = argv[1], argv[2], argv[3].split(",")
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
    elif command == "owners":
        for k in keys(count):
            print(owner(scheme, c, servers, k))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
