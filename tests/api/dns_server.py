#!/usr/bin/env python3
"""A small authoritative DNS server for t_egress.sh (stdlib only), UDP and TCP.

  dns_server.py ADDR PORT LOG NAME=IP...

Answers A queries for each NAME with IP (TTL 60), NXDOMAIN for any other name, NOERROR with no
records for other types of a known name. Every query's name is appended to LOG, one per line, so
a test can prove that a name was (or was never) asked upstream.
"""
import socket
import struct
import sys
import threading

addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
table = dict(a.split("=", 1) for a in sys.argv[4:])
lock = threading.Lock()


def parse_name(m, off):
    labels = []
    while m[off]:
        n = m[off]
        labels.append(m[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels).lower(), off + 1


def answer(q):
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    name, end = parse_name(q, 12)
    qtype, _ = struct.unpack("!HH", q[end:end + 4])
    with lock, open(log, "a") as f:
        f.write(name + "\n")
    question = q[12:end + 4]
    ip = table.get(name)
    rcode = 0 if ip else 3
    an = 1 if ip and qtype == 1 else 0
    head = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1, an, 0, 0)
    body = question
    if an:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    return head + body


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        q, peer = s.recvfrom(4096)
        a = answer(q)
        if a:
            s.sendto(a, peer)


def tcp_client(c):
    with c:
        while True:
            ln = c.recv(2)
            if len(ln) < 2:
                return
            n = struct.unpack("!H", ln)[0]
            q = b""
            while len(q) < n:
                part = c.recv(n - len(q))
                if not part:
                    return
                q += part
            a = answer(q)
            c.sendall(struct.pack("!H", len(a)) + a)


def tcp():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


threading.Thread(target=udp, daemon=True).start()
tcp()
