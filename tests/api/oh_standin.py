# A stand-in for OpenHands' agent server, run inside a sandbox by tests/api/t_openhands.sh (the
# real one cannot be installed here). Port 60000: /alive, /health and /server_info without auth;
# /api/* only with X-Session-API-Key equal to $SESSION_API_KEY (/api/whoami reports the process's
# uid, gid, cwd and the headers it got); a WebSocket on /sockets/events/* that authenticates with
# its first frame, {"type":"auth","session_api_key":...}, then echoes. Ports 60001, 12000 and
# 12001 answer any path with their port number. Standard library only.
import base64, hashlib, json, os, struct, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("SESSION_API_KEY", "")


def ws_read(f):
    h = f.read(2)
    if len(h) < 2:
        return None
    op, n, masked = h[0] & 15, h[1] & 127, h[1] & 128
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", f.read(8))[0]
    mask = f.read(4) if masked else b"\0\0\0\0"
    d = bytearray(f.read(n))
    for i in range(len(d)):
        d[i] ^= mask[i % 4]
    return None if op == 8 else bytes(d)


def ws_write(f, data):
    n = len(data)
    hdr = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + struct.pack(">H", n)
    f.write(hdr + data)
    f.flush()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        port = self.server.server_address[1]
        path = self.path.split("?")[0]
        if port != 60000:
            return self.reply(200, {"port": port, "path": self.path})
        if path in ("/alive", "/health", "/server_info"):
            return self.reply(200, {"status": "ok"})
        if path.startswith("/sockets/events/"):
            return self.ws()
        if not path.startswith("/api/"):
            return self.reply(404, {"detail": "not found"})
        if not KEY or self.headers.get("X-Session-API-Key") != KEY:
            return self.reply(401, {"detail": "Unauthorized"})
        st = os.stat(".")
        self.reply(200, {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
                         "cwd_uid": st.st_uid, "cwd_gid": st.st_gid, "path": self.path,
                         "x_api_key": self.headers.get("X-API-Key"),
                         "execd_token": self.headers.get("X-EXECD-ACCESS-TOKEN"),
                         "body": body.decode(errors="replace"),
                         "worker_1": os.environ.get("WORKER_1")})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def ws(self):
        k = self.headers.get("Sec-WebSocket-Key", "")
        acc = base64.b64encode(hashlib.sha1(
            (k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        try:
            first = json.loads(ws_read(self.rfile) or b"{}")
        except ValueError:
            first = {}
        if first.get("type") != "auth" or not KEY or first.get("session_api_key") != KEY:
            ws_write(self.wfile, b"denied")
            return
        ws_write(self.wfile, b"authed")
        while True:
            m = ws_read(self.rfile)
            if m is None:
                return
            ws_write(self.wfile, b"echo:" + m)


for p in (60001, 12000, 12001):
    s = ThreadingHTTPServer(("0.0.0.0", p), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 60000), H).serve_forever()
