#!/usr/bin/env python3
"""tokenserver.py: a minimal Docker registry token server (the `realm` of `auth: token:`) for tests.

  tokenserver.py --listen 127.0.0.1:PORT --tls-cert C --tls-key K --sign-key SK --sign-cert SC \
                 --issuer ISS --service SVC --user U --password P

GET /token?service=SVC&scope=repository:NAME:pull,push[&scope=...] over HTTPS:
  - Authorization: Basic U:P  -> 200 {"token", "access_token", "expires_in", "issued_at"} granting
    every requested action;
  - no Authorization          -> 200 with an anonymous token granting nothing (as the spec's
    anonymous flow: the registry then answers 401/insufficient_scope);
  - wrong credentials         -> 401.
The token is a JWT signed RS256 by SK (via `openssl dgst -sha256 -sign`, so no python package is
needed); its header carries SC in `x5c`, which the registry checks against its rootcertbundle
(SC itself). One log line per request on stdout. Only the standard library is used.
"""
import argparse
import base64
import hmac
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pem_to_der_b64(path):
    """The base64 body of a PEM certificate is the standard base64 of its DER (x5c's format)."""
    lines = open(path).read().strip().splitlines()
    return "".join(l for l in lines if not l.startswith("-----"))


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "sbx-test-token/1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))
        sys.stdout.flush()

    def reply(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        o = self.server.opts
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        q = urllib.parse.parse_qs(u.query)
        if q.get("service", [o.service])[0] != o.service:
            return self.reply(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
        auth = self.headers.get("Authorization", "")
        user = ""
        if auth:
            ok = False
            if auth.lower().startswith("basic "):
                try:
                    u_, _, p_ = base64.b64decode(auth[6:].strip()).decode().partition(":")
                    ok = hmac.compare_digest(u_, o.user) and hmac.compare_digest(p_, o.password)
                    user = u_
                except ValueError:
                    ok = False
            if not ok:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                    "message": "bad credentials"}]},
                                  {"WWW-Authenticate": 'Basic realm="sbx-test-token"'})
        access = []
        if user:
            for scope in q.get("scope", []):
                for one in scope.split(" "):
                    # type:name:actions, where name may hold ':' (e.g. a host:port prefix)
                    typ, _, rest = one.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if typ and name:
                        access.append({"type": typ, "name": name,
                                       "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {"iss": o.issuer, "sub": user, "aud": o.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.server.x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", o.sign_key],
                             input=signing_input, stdout=subprocess.PIPE, check=True,
                             timeout=10).stdout
        token = signing_input.decode() + "." + b64url(sig)
        self.reply(200, {"token": token, "access_token": token, "expires_in": 300,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})


def main():
    p = argparse.ArgumentParser()
    for k in ("listen", "tls_cert", "tls_key", "sign_key", "sign_cert", "issuer", "service",
              "user", "password"):
        p.add_argument("--" + k.replace("_", "-"), required=True)
    o = p.parse_args()
    host, port = o.listen.rsplit(":", 1)
    # A loopback-only server: refuse any other address rather than trust the caller.
    if host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("tokenserver: refusing to listen on " + host)
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(o.tls_cert, o.tls_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.opts = o
    srv.x5c = pem_to_der_b64(o.sign_cert)
    print("tokenserver: listening on https://%s" % o.listen, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
