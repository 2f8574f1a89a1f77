#!/usr/bin/env python3
"""Throws COUNT random and mutated DNS queries at SERVER:53 over UDP (seeded, bounded) and
prints how many replies came back. Usage: dnsfuzz.py SERVER COUNT"""
import random
import socket
import struct
import sys

server, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
valid = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03www\x07example\x03com\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.0)
replies = 0
for i in range(count):
    kind = i % 4
    if kind == 0:
        msg = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    elif kind == 1:
        b = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        msg = bytes(b)
    elif kind == 2:
        msg = valid[: rng.randint(0, len(valid) - 1)]
    else:
        # compression pointer loop in the question name
        msg = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    try:
        s.sendto(msg, (server, 53))
    except OSError:
        pass
    try:
        while True:
            s.recvfrom(4096)
            replies += 1
    except (BlockingIOError, OSError):
        pass
print(replies)
