#!/usr/bin/python3
"""A hostile alarm agent (issue 29): a plain unix socket server at SOCKET that
speaks just enough ZMTP 3.0 (the greeting and a REP READY, RFC 23/ZMTP) to be
taken for Clearwater's agent, then answers each request with something no
agent sends. libzmq cannot be made to send these, hence the raw socket.

  hostile_alarm_agent.py SOCKET huge     announce one frame of 2^62 bytes
  hostile_alarm_agent.py SOCKET flood    an answer of legal 255-byte frames,
                                         each marked "more", 64 MiB of them
  hostile_alarm_agent.py SOCKET command  announce a 2^62-byte command in
                                         place of READY

It prints "listening" when bound, then "request" for each request read (the
frames as they arrived, hex), "dropped" when the client closed the
connection, and "sent N" with the bytes of flood written when it stopped.
"""
import os
import socket
import struct
import sys

GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
assert len(GREETING) == 64


def ready(socket_type):
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return b"\x04" + bytes([len(body)]) + body


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(conn):
    flags = read_exactly(conn, 1)[0]
    if flags & 0x02:
        size = struct.unpack(">Q", read_exactly(conn, 8))[0]
    else:
        size = read_exactly(conn, 1)[0]
    return flags, read_exactly(conn, size)


def read_message(conn):
    """The next message's frames, skipping commands."""
    frames = []
    while True:
        flags, body = read_frame(conn)
        if flags & 0x04:
            continue
        frames.append(body)
        if not flags & 0x01:
            return frames


def serve(conn, mode):
    conn.sendall(GREETING)
    read_exactly(conn, 64)
    if mode == "command":
        # A long command frame announcing 2^62 bytes, then a trickle.
        conn.sendall(b"\x06" + struct.pack(">Q", 1 << 62) + b"\x05READY")
        conn.recv(1)  # until the client goes
        return
    conn.sendall(ready(b"REP"))
    while True:
        frames = read_message(conn)
        print("request " + " ".join(f.hex() for f in frames), flush=True)
        if mode == "huge":
            # The REQ envelope's empty delimiter, then one frame of 2^62.
            conn.sendall(b"\x01\x00" + b"\x02" + struct.pack(">Q", 1 << 62) + b"ok")
        elif mode == "flood":
            frame = b"\x01\xff" + b"x" * 255
            sent = 0
            try:
                conn.sendall(b"\x01\x00")
                while sent < 64 << 20:
                    conn.sendall(frame * 64)
                    sent += len(frame) * 64
            except OSError:
                pass
            print(f"sent {sent}", flush=True)
            return


def main(argv):
    path, mode = argv[1], argv[2]
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o777)
    listener.listen(8)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        try:
            serve(conn, mode)
        except (EOFError, OSError):
            pass
        print("dropped", flush=True)
        conn.close()


if __name__ == "__main__":
    main(sys.argv)
