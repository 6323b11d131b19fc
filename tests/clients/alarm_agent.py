#!/usr/bin/python3
"""A stand-in for Clearwater's alarm agent (clearwater-snmp-alarm-agent), the
one part of a Clearwater node that cannot run here. Like the agent's
AlarmReqListener it binds a ZeroMQ REP socket (libzmq, through Debian's
python3-zmq) at ipc://SOCKET, made mode 0777, takes multipart requests and
answers "ok". Each request is printed as one line, its frames separated by
spaces, so the test sees exactly what arrived.

  alarm_agent.py SOCKET           answer every request
  alarm_agent.py SOCKET silent    take requests, never answer
"""
import os
import sys

import zmq


def main(argv):
    path, silent = argv[1], len(argv) > 2 and argv[2] == "silent"
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.bind(f"ipc://{path}")
    os.chmod(path, 0o777)
    print("listening", flush=True)
    while True:
        frames = sock.recv_multipart()
        print(" ".join(f.decode("utf-8", "replace") for f in frames), flush=True)
        if silent:
            # A REP socket must answer before it can take the next request;
            # a hung agent takes one and never answers.
            sys.stdin.read()
            return
        sock.send(b"ok")


if __name__ == "__main__":
    main(sys.argv)
