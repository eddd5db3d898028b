#!/usr/bin/env python3
"""A fake, hostile apid + agent for tests/api/t_cli_fake.sh, on 127.0.0.1 only.

usage: fake_agent.py PORTFILE  — listens on a free port (written to PORTFILE) and serves one
sandbox "evil" whose agent lists, for directory /d, the entries named by the current scenario
(GET /scenario/NAME switches). Downloads answer "abc" (3 bytes) or, for big.bin, 10 bytes.
POST /v1/sandboxes keeps the body it got in PORTFILE.create.json and answers a 400."""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse, parse_qs

SCEN = {
    "dotdot": [{"path": "/d/../escape", "type": "file", "mode": 644, "size": 3}],
    "outside": [{"path": "/other/escape", "type": "file", "mode": 644, "size": 3}],
    "prefix": [{"path": "/dx/escape", "type": "file", "mode": 644, "size": 3}],
    "deep": [{"path": "/d/a", "type": "directory", "mode": 755, "size": 0},
             {"path": "/d/a/../../escape", "type": "file", "mode": 644, "size": 3}],
    "symlink": [{"path": "/d/link/escape", "type": "file", "mode": 644, "size": 3}],
    "oversize": [{"path": "/d/big.bin", "type": "file", "mode": 644, "size": 3}],
    "good": [{"path": "/d/a", "type": "directory", "mode": 700, "size": 0},
             {"path": "/d/a/f", "type": "file", "mode": 640, "size": 3}],
}
state = {"s": "good"}

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json"):
        b = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path.startswith("/scenario/"):
            state["s"] = u.path.split("/")[-1]
            return self.send(200, {})
        if u.path == "/v1/sandboxes/evil/endpoints/44772":
            port = self.server.server_address[1]
            return self.send(200, {"endpoint": f"127.0.0.1:{port}/agent"})
        if u.path == "/agent/files/info":
            p = q["path"][0]
            return self.send(200, {p: {"path": p, "type": "directory", "mode": 755, "size": 0}})
        if u.path == "/agent/directories/list":
            return self.send(200, SCEN[state["s"]])
        if u.path == "/agent/files/download":
            body = b"0123456789" if q["path"][0].endswith("big.bin") else b"abc"
            return self.send(200, body, "application/octet-stream")
        return self.send(404, {"code": "SANDBOX::NOT_FOUND", "message": "no such sandbox"})

    def do_POST(self):
        n = min(int(self.headers.get("Content-Length", "0")), 1 << 20)
        body = self.rfile.read(n)
        if self.path == "/v1/sandboxes":
            with open(sys.argv[1] + ".create.json", "wb") as f:
                f.write(body)
            return self.send(400, {"code": "SANDBOX::INVALID_PARAMETER", "message": "captured by the fake"})
        return self.send(404, {"code": "SANDBOX::NOT_FOUND", "message": "no such route"})

srv = HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
