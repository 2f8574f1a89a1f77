#!/usr/bin/env python3
"""Sends crafted Ethernet frames from a raw AF_PACKET socket, for tests that need frames the
kernel's stack would never send: a MAC flood, multicast source MACs, oversize frames.

usage: rawsend.py IFNAME MODE COUNT [SIZE]
  flood     COUNT frames, each from a different random unicast source MAC, to broadcast
  badsrc    COUNT frames with a multicast source MAC
  oversize  COUNT frames of SIZE bytes (no offload header: the switch must drop them)
Prints the number of frames sent.
"""
import os
import random
import socket
import struct
import sys


def main() -> None:
    ifname, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    rng = random.Random(1234)
    bcast = b"\xff" * 6
    payload = b"\x00" * max(0, size - 14)
    sent = 0
    for i in range(count):
        if mode == "flood":
            src = bytes([0x02]) + struct.pack(">IB", rng.getrandbits(32), rng.getrandbits(8))
            frame = bcast + src + b"\x88\xb5" + payload
        elif mode == "badsrc":
            frame = bcast + b"\x01\x00\x5e\x00\x00\x01" + b"\x88\xb5" + payload
        elif mode == "oversize":
            frame = b"\x02\x00\x00\x00\x00\x09" + b"\x02\x00\x00\x00\x00\x08" + b"\x88\xb5" + payload
        else:
            raise SystemExit(f"unknown mode {mode}")
        try:
            s.send(frame)
            sent += 1
        except OSError as e:
            if e.errno not in (105,):  # ENOBUFS: queue full, skip
                raise
    print(sent)


if __name__ == "__main__":
    main()
