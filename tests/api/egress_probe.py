#!/usr/bin/env python3
"""Runs inside a sandbox for t_egress.sh (stdlib only); prints one word or address.

  resolve NAME              the system resolver (getaddrinfo, /etc/resolv.conf): the IPv4
                            address, or NXDOMAIN (EAI_NONAME), AGAIN (EAI_AGAIN: timeout or
                            SERVFAIL), ERROR
  query SERVER NAME udp|tcp a raw A query to SERVER:53: NOERROR <ip> | NXDOMAIN | RCODE<n> |
                            TIMEOUT (nothing came back: dropped)
  connect HOST PORT         REACH (an HTTP server answered), BLOCKED, NOT-HTTP
  qbench SERVER NAME N      (tests/bench/egress.sh) N sequential UDP A queries: "p50 p99" in ms
  cbench HOST PORT N        N sequential TCP connects (closed at once): "p50 p99" in ms
"""
import random
import socket
import struct
import sys
import time


def resolve(name):
    try:
        return socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except socket.gaierror as e:
        return {socket.EAI_NONAME: "NXDOMAIN", socket.EAI_AGAIN: "AGAIN"}.get(e.errno, "ERROR")


def query(server, name, proto):
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack("!HH", 1, 1)
    try:
        if proto == "tcp":
            s = socket.create_connection((server, 53), 2)
            s.settimeout(2)
            s.sendall(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", s.recv(2))[0]
            a = b""
            while len(a) < n:
                a += s.recv(n - len(a))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(q, (server, 53))
            a = s.recv(4096)
    except (OSError, struct.error):
        return "TIMEOUT"
    rcode = a[3] & 0x0F
    if rcode == 3:
        return "NXDOMAIN"
    if rcode:
        return "RCODE%d" % rcode
    an = struct.unpack("!H", a[6:8])[0]
    return "NOERROR " + (socket.inet_ntoa(a[-4:]) if an else "-")


def connect(host, port):
    try:
        s = socket.create_connection((host, int(port)), 2)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return "REACH" if s.recv(8).startswith(b"HTTP/") else "NOT-HTTP"
    except OSError:
        return "BLOCKED"


def pct(ts):
    ts.sort()
    return "%.3f %.3f" % (ts[len(ts) // 2] * 1000, ts[min(len(ts) - 1, int(len(ts) * 0.99))] * 1000)


def qbench(server, name, n):
    ts = []
    for _ in range(int(n)):
        t = time.perf_counter()
        r = query(server, name, "udp")
        ts.append(time.perf_counter() - t)
        if not r.startswith("NOERROR"):
            return "FAILED " + r
    return pct(ts)


def cbench(host, port, n):
    ts = []
    for _ in range(int(n)):
        t = time.perf_counter()
        try:
            socket.create_connection((host, int(port)), 2).close()
        except OSError:
            return "FAILED"
        ts.append(time.perf_counter() - t)
    return pct(ts)


cmd = sys.argv[1]
print({"resolve": resolve, "query": query, "connect": connect, "qbench": qbench,
       "cbench": cbench}[cmd](*sys.argv[2:]))
