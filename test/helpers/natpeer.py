#!/usr/bin/env python3
"""Peers for NAT tests, run inside the test's namespaces.

  natpeer.py stream-serve IP PORT BYTES    send BYTES of seeded pseudo-random data to each client; print sha256 per client
  natpeer.py stream-fetch IP PORT [DELAY]  read until EOF (after DELAY s without reading); print "<bytes> <sha256>"
  natpeer.py stream-sink IP PORT [DELAY]   per client: wait DELAY s, read until EOF; print "<bytes> <sha256>"
  natpeer.py stream-push IP PORT BYTES     send BYTES of the same data as stream-serve; print its sha256
  natpeer.py http-serve IP PORT LOG        HTTP 200 'ok' to every GET; append each client's "ip port" to LOG
  natpeer.py udp-echo IP PORT LOG          echo datagrams back; log each sender
  natpeer.py udp-ask IP PORT TEXT [SPORT]  send TEXT (from local port SPORT), print the reply (2 s timeout)
  natpeer.py udp-send IP PORT TEXT BIND_IP:BIND_PORT   send TEXT from that address, wait for nothing
  natpeer.py udp-echo-many LOG IP:PORT...  echo datagrams back on every address given; log "sender_ip sender_port local_ip:local_port"
  natpeer.py udp-fan SPORT SECONDS IP:PORT...  from local port SPORT send "hi" to each; for SECONDS print
                                            "ip port text" for every datagram received
  natpeer.py udp-spray IP FIRST_DPORT N SPORT...  from each local port SPORT one datagram to IP:FIRST_DPORT..+N-1,
                                            paced (10000/s), twice (a datagram lost the first time makes its flow
                                            the second); print how many were sent
  natpeer.py hold-serve IP PORT            accept connections and keep them open
  natpeer.py many-connect IP PORT N        open N connections at once; print how many connected
  natpeer.py get-from-port IP PORT LPORT N  N HTTP GETs, each from local port LPORT, read to EOF
                                            (the server closes first, so the client keeps no
                                            TIME-WAIT and can reuse the port); print how many got 200
"""
import hashlib
import http.server
import os
import random
import socket
import socketserver
import sys
import threading
import time


def read_all(c):
    """Reads a stream to its end: (bytes, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)


mode = sys.argv[1]


def block_stream(total):
    rng = random.Random(7)
    block = rng.randbytes(1 << 20)
    sent = 0
    i = 0
    while sent < total:
        n = min(len(block), total - sent)
        chunk = i.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n]
        yield chunk
        sent += n
        i += 1


if mode == "stream-serve":
    ip, port, total = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    srv = socket.create_server((ip, port), reuse_port=False)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        h = hashlib.sha256()
        for chunk in block_stream(total):
            c.sendall(chunk)
            h.update(chunk)
        c.shutdown(socket.SHUT_WR)
        c.close()
        print(h.hexdigest(), flush=True)
elif mode == "stream-fetch":
    ip, port = sys.argv[2], int(sys.argv[3])
    c = socket.create_connection((ip, port), timeout=60)
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 0)
    n, digest = read_all(c)
    print(n, digest)
elif mode == "stream-sink":
    ip, port = sys.argv[2], int(sys.argv[3])
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    srv = socket.create_server((ip, port), reuse_port=False)
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        time.sleep(delay)
        n, digest = read_all(c)
        c.close()
        print(n, digest, flush=True)
elif mode == "stream-push":
    ip, port, total = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = socket.create_connection((ip, port), timeout=60)
    h = hashlib.sha256()
    for chunk in block_stream(total):
        c.sendall(chunk)
        h.update(chunk)
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    print(h.hexdigest())
elif mode == "http-serve":
    ip, port, log = sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(log, "a") as f:
                f.write(f"{self.client_address[0]} {self.client_address[1]}\n")
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 256

    S((ip, port), H).serve_forever()
elif mode == "udp-echo":
    ip, port, log = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    while True:
        d, a = s.recvfrom(65535)
        with open(log, "a") as f:
            f.write(f"{a[0]} {a[1]}\n")
        s.sendto(b"echo:" + d, a)
elif mode == "udp-ask":
    ip, port, text = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if len(sys.argv) > 5:
        s.bind(("0.0.0.0", int(sys.argv[5])))
    s.settimeout(2)
    s.sendto(text.encode(), (ip, port))
    try:
        print(s.recvfrom(65535)[0].decode())
    except socket.timeout:
        print("timeout")
elif mode == "udp-send":
    ip, port, text, (bip, bport) = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bip, int(bport)))
    s.sendto(text.encode(), (ip, port))
elif mode == "udp-echo-many":
    import selectors
    log = sys.argv[2]
    sel = selectors.DefaultSelector()
    for a in sys.argv[3:]:
        bip, bport = a.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((bip, int(bport)))
        sel.register(s, selectors.EVENT_READ, a)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            d, a = key.fileobj.recvfrom(65535)
            with open(log, "a") as f:
                f.write(f"{a[0]} {a[1]} {key.data}\n")
            key.fileobj.sendto(b"echo:" + d, a)
elif mode == "udp-fan":
    sport, secs = int(sys.argv[2]), float(sys.argv[3])
    end = time.time() + secs
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", sport))
    for a in sys.argv[4:]:
        dip, dport = a.split(":")
        s.sendto(b"hi", (dip, int(dport)))
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            d, a = s.recvfrom(65535)
            print(a[0], a[1], d.decode(errors="replace"), flush=True)
        except socket.timeout:
            pass
elif mode == "udp-spray":
    ip, first, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    socks = []
    for p in sys.argv[5:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(p)))
        socks.append(s)
    sent = 0
    t0 = time.time()
    for _ in range(2):
        for dport in range(first, first + n):
            for s in socks:
                try:
                    s.sendto(b"x", (ip, dport))
                    sent += 1
                except OSError:
                    pass
            # 10000 datagrams/s: the sandbox's queue towards the switch is not flooded
            ahead = t0 + sent / 10000 - time.time()
            if ahead > 0.005:
                time.sleep(ahead)
    print(sent)
elif mode == "hold-serve":
    ip, port = sys.argv[2], int(sys.argv[3])
    srv = socket.create_server((ip, port), backlog=1024)
    held = []
    while True:
        c, _ = srv.accept()
        held.append(c)
elif mode == "many-connect":
    ip, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ok = 0
    socks = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect((ip, port))
            socks.append(s)
            ok += 1
        except OSError:
            s.close()
    print(ok)
elif mode == "get-from-port":
    ip, port, lport, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    ok = 0
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(5)
        try:
            s.bind(("0.0.0.0", lport))
            s.connect((ip, port))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            if data.startswith(b"HTTP/1.0 200"):
                ok += 1
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.2)
    print(ok)
else:
    raise SystemExit(__doc__)
