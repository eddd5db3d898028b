#!/usr/bin/env python3
"""Helpers for t_net.sh (stdlib only).

  serve PORT            in a sandbox: GET /sse streams 3 events 0.4 s apart; GET /ws is a
                        WebSocket echo (one text frame back per frame received)
  sse URL               prints "<seconds since start> <line>" per received data: line
  ws URL TEXT           WebSocket handshake through URL, sends TEXT, prints the echo
  burst API KEY BODY THREADS EACH
                        THREADS clients each create EACH sandboxes through the API at API (an
                        http://host:port base) and connect to each one's agent at its address the
                        moment the create returns, until the agent accepts (refusals while it
                        starts are expected); prints one created id per line
"""
import base64, hashlib, os, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_frame(sock):
    def need(n):
        b = b""
        while len(b) < n:
            c = sock.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    h = need(2)
    ln = h[1] & 0x7F
    if ln == 126:
        ln = int.from_bytes(need(2), "big")
    elif ln == 127:
        ln = int.from_bytes(need(8), "big")
    mask = need(4) if h[1] & 0x80 else None
    data = bytearray(need(ln))
    if mask:
        for i in range(len(data)):
            data[i] ^= mask[i % 4]
    return h[0] & 0x0F, bytes(data)


def frame(data, masked):
    hdr = bytearray([0x81])
    ln = len(data)
    m = 0x80 if masked else 0
    if ln < 126:
        hdr.append(m | ln)
    else:
        hdr.append(m | 126)
        hdr += ln.to_bytes(2, "big")
    if not masked:
        return bytes(hdr) + data
    key = os.urandom(4)
    return bytes(hdr) + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                b = ("data: event%d\n\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
                self.wfile.flush()
                time.sleep(0.4)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/ws"):
            key = self.headers.get("Sec-WebSocket-Key", "")
            acc = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", acc)
            self.end_headers()
            self.wfile.flush()
            try:
                while True:
                    op, data = recv_frame(self.connection)
                    if op == 8:
                        break
                    self.connection.sendall(frame(b"echo:" + data, False))
            except EOFError:
                pass
            self.close_connection = True
            return
        body = b"hello from the sandbox\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def burst(api, key, body, threads, each):
    import http.client, json, threading
    u = urlsplit(api)
    ids, lock = [], threading.Lock()

    def client():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        hdr = {"Content-Type": "application/json", "OPEN-SANDBOX-API-KEY": key}
        for _ in range(each):
            c.request("POST", "/v1/sandboxes", body, hdr)
            sid = json.loads(c.getresponse().read())["id"]
            c.request("GET", "/v1/sandboxes/%s/endpoints/44772?direct=true" % sid, headers=hdr)
            host, port = json.loads(c.getresponse().read())["endpoint"].split(":")
            for _ in range(20000):  # bounded: ~10 s of refusals at most
                try:
                    socket.create_connection((host, int(port)), timeout=10).close()
                    break
                except ConnectionRefusedError:
                    time.sleep(0.0005)
            with lock:
                ids.append(sid)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print("\n".join(ids))


def main():
    cmd = sys.argv[1]
    if cmd == "serve":
        ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
    if cmd == "burst":
        burst(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    u = urlsplit(sys.argv[2])
    s = socket.create_connection((u.hostname, u.port or 80), timeout=10)
    path = u.path + ("?" + u.query if u.query else "")
    if cmd == "sse":
        t0 = time.time()
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                   "Connection: close\r\n\r\n" % path).encode())
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
            while b"data: " in buf:
                i = buf.index(b"data: ")
                j = buf.find(b"\n", i)
                if j < 0:
                    break
                print("%.3f %s" % (time.time() - t0, buf[i + 6:j].decode()), flush=True)
                buf = buf[j + 1:]
    elif cmd == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (path, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            c = s.recv(1)
            if not c:
                print("no handshake")
                sys.exit(1)
            head += c
        status = head.split(b"\r\n")[0].decode()
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest())
        if " 101 " not in status + " " or want not in head:
            print("bad handshake: " + status)
            sys.exit(1)
        s.sendall(frame(sys.argv[3].encode(), True))
        op, data = recv_frame(s)
        print(data.decode())
        s.sendall(bytes([0x88, 0x80]) + os.urandom(4))


if __name__ == "__main__":
    main()
