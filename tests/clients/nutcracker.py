#!/usr/bin/python3
"""The twemproxy side of tests/libraries.rs (issue 30): the real pylibmc
writes and reads back typed values through a real nutcracker (twemproxy),
which picks the server; pylibmc keeps a value's type in its flags. One
process per case; commands on stdin, one JSON line each:

  write TAG PROXY   every key, through the nutcracker at PROXY   {"written": N}
  read TAG PROXY    every key, through the nutcracker at PROXY   {"hit", "missing", "wrong", "example"}

argv: COUNT KINDS (ascii | utf8 | bytes). PROXY: host:port of the pool's
listen address. The keys and values are those of tests/clients/keys.md.
"""
import json
import sys

import pylibmc


def key(i, kinds):
    if kinds != "ascii":
        if i % 10 == 3:
            return f"ключ:{i}".encode()
        if i % 10 == 5:
            return f"日本😀:{i}".encode()
        if kinds == "bytes" and i % 10 == 7:
            return b"\xff\xfe:" + str(i).encode()
    if i % 10 == 1:
        return f"{{user:{i}}}:session".encode()
    if i % 10 == 9:
        return f"long:{i}:".encode() + b"x" * (i % 200)
    return f"user:{i}@example.com".encode()


def value(tag, i):
    return [f"{tag}:{i}", i * 7 + 1, f"{tag}:{i}:é", [tag, i]][i % 4]


def main():
    count, kinds = int(sys.argv[1]), sys.argv[2]
    for line in sys.stdin:
        command, tag, proxy = line.split()
        c = pylibmc.Client([proxy], behaviors={"connect_timeout": 5000, "receive_timeout": 5000000, "send_timeout": 5000000})
        if command == "write":
            for i in range(count):
                if not c.set(key(i, kinds), value(tag, i)):
                    sys.exit(f"set {key(i, kinds)!r} through {proxy} failed")
            print(json.dumps({"written": count}), flush=True)
        elif command == "read":
            hit = missing = wrong = 0
            example = None
            for i in range(count):
                got, want = c.get(key(i, kinds)), value(tag, i)
                if got is None:
                    missing += 1
                    example = example or f"missing {key(i, kinds)!r}"
                elif got != want or type(got) is not type(want):
                    wrong += 1
                    example = example or f"{key(i, kinds)!r}: {got!r}"
                else:
                    hit += 1
            print(json.dumps({"hit": hit, "missing": missing, "wrong": wrong, "example": example}), flush=True)
        else:
            sys.exit(f"unknown command {command}")
        c.disconnect_all()


main()
