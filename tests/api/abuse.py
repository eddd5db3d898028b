#!/usr/bin/env python3
"""Hostile HTTP client for t_abuse.sh (stdlib only; 127.0.0.1 only; every loop bounded).

  abuse.py PORT KEY SANDBOX_ID TOTAL OUT_JSON

Sends TOTAL malformed or hostile requests to sbx-apid on 127.0.0.1:PORT, in phases:
  json     bad JSON, wrong types, deep nesting, odd encodings to every body-taking route
  auth     missing/wrong/huge API keys
  method   bad, unknown and mismatched methods
  path     path tricks on the lifecycle and proxy routes (.., %2e%2e, //, %2f, NUL, long ids)
  body     bodies over --max-body (declared and chunked)
  header   huge header lines and many headers (MHD's per-connection memory limit)
  raw      malformed request lines / HTTP versions
  slow     slowloris: connections that send their head one byte every 0.5 s, for a bounded time
  idle     many idle connections held open at once (IDLE of them) during the other phases, then
           OVER at once on their own (over apid's connection limit of 1000: the excess is closed)
Each answer is classified:
  json4xx   a 4xx with a JSON {code, message} body      (the expected answer)
  limit     the HTTP layer's own 400/413/414/431 (non-JSON) or a close: a documented limit
  bad       anything else: a 5xx, a 2xx to a hostile request, a 4xx without JSON on an API route
Writes {"sent": N, "json4xx": N, "limit": {...}, "bad": [...first 20...], ...} to OUT_JSON.
"""
import json, os, random, resource, socket, sys, threading, time

PORT, KEY, SID, TOTAL, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
IDLE = int(os.environ.get("ABUSE_IDLE", "500"))  # idle connections held during the request phases
OVER = int(os.environ.get("ABUSE_OVER", "1200"))  # then at once, alone: over apid's limit of 1000
SLOW = int(os.environ.get("ABUSE_SLOW", "40"))
HOST = "127.0.0.1"
rnd = random.Random(17)
lock = threading.Lock()
stats = {"sent": 0, "json4xx": 0, "limit": {}, "bad": [], "bad_count": 0, "by_status": {}}
# Statuses the HTTP layer (libmicrohttpd) produces itself before apid sees a request; these bodies
# are HTML and the connection is closed. The phases that may get them say so.
MHD_LIMITS = {400, 413, 414, 431, 505}


def read_response(s, timeout=15.0):
    """Returns (status, headers dict, body bytes) or (None, None, reason) on close/timeout."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            c = s.recv(65536)
            if not c:
                return None, None, "closed" if not buf else "closed-mid-head"
            buf += c
            if len(buf) > 1 << 20:
                return None, None, "head too big"
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0") or 0)
        while len(body) < n:
            c = s.recv(65536)
            if not c:
                break
            body += c
        return status, hdrs, body[:n]
    except socket.timeout:
        return None, None, "timeout"
    except (ConnectionResetError, BrokenPipeError):
        return None, None, "reset"
    except (ValueError, IndexError):
        return None, None, "unparsable"


def record(phase, what, status, hdrs, body, limit_ok):
    with lock:
        stats["sent"] += 1
        key = str(status) if status is not None else body
        stats["by_status"][key] = stats["by_status"].get(key, 0) + 1
        if status is not None and 400 <= status < 500:
            try:
                j = json.loads(body)
                if isinstance(j, dict) and isinstance(j.get("code"), str) and isinstance(j.get("message"), str):
                    stats["json4xx"] += 1
                    return
            except ValueError:
                pass
        if limit_ok and (status is None or status in MHD_LIMITS):
            k = "%s:%s" % (phase, status if status is not None else body)
            stats["limit"][k] = stats["limit"].get(k, 0) + 1
            return
        stats["bad_count"] += 1
        kind = "%s:%s" % (phase, status)
        stats.setdefault("bad_kinds", {})[kind] = stats.setdefault("bad_kinds", {}).get(kind, 0) + 1
        seen = stats.setdefault("_seen", set())
        if (kind, what[:80]) not in seen and len(stats["bad"]) < 40:
            seen.add((kind, what[:80]))
            stats["bad"].append({"phase": phase, "request": what[:200], "status": status,
                                 "body": (body[:200].decode("latin-1") if isinstance(body, bytes) else body)})


def send_raw(phase, raw, limit_ok=False, what=None, half_close=False):
    try:
        s = socket.create_connection((HOST, PORT), timeout=10)
    except OSError as e:
        record(phase, what or repr(raw[:120]), None, None, "connect: " + e.__class__.__name__, limit_ok)
        return
    try:
        try:
            s.sendall(raw)
            if half_close:  # an incomplete request then EOF: the server must not wait for more
                s.shutdown(socket.SHUT_WR)
        except (OSError, socket.timeout):
            pass  # the server closed or stopped reading (a limit); its answer, if any, is read below
        st, h, b = read_response(s)
        record(phase, what or repr(raw[:120]), st, h, b, limit_ok)
    finally:
        s.close()


def req(method, path, body=b"", headers=None, key=True):
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if key:
        h["OPEN-SANDBOX-API-KEY"] = KEY
    if body:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    if body or method in ("POST", "PUT", "PATCH"):
        h["Content-Length"] = str(len(body))
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return head.encode("latin-1") + body


ROUTES = [("POST", "/v1/sandboxes"), ("POST", "/sandboxes"), ("PATCH", "/v1/sandboxes/%s/metadata" % SID),
          ("POST", "/v1/sandboxes/%s/renew-expiration" % SID), ("POST", "/create_session"),
          ("POST", "/execute"), ("POST", "/execute_batch"), ("POST", "/cleanup"),
          ("POST", "/v1/sandboxes/%s/pause" % "00000000-0000-4000-8000-000000000000")]
BAD_BODIES = [b"{", b"[", b"}", b"null", b"0", b"\"x\"", b"[1,2]", b"{\"image\":", b"{\"image\":{}}",
              b"{\"image\":{\"uri\":5}}", b"{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":\"sh\"}",
              b"{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":[\"sh\"],\"timeout\":-1}",
              b"{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":[\"sh\"],\"timeout\":1e309}",
              b"{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":[\"sh\"],\"resourceLimits\":{\"memory\":\"99999999999999999999Gi\"}}",
              b"{\"image\":{\"uri\":\"../../../../etc\"},\"entrypoint\":[\"sh\"]}",
              b"{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":[\"sh\"],\"metadata\":{\"\":\"\"}}",
              b"{\"expiresAt\":\"9999-99-99T99:99:99Z\"}", b"{\"expiresAt\":1}",
              b"{\"session_id\":[],\"command\":{}}", b"{\"session_id\":\"../../x\",\"command\":\"id\"}",
              b"{\"session_id\":\"00000000-0000-4000-8000-000000000000\",\"command\":5}",
              b"{\"commands\":\"x\"}", b"\xff\xfe\x00{", b"{\"a\":\"\\ud800\"}", b"{\"a\":1,\"a\":2",
              b"\x00\x00\x00\x00", b"{\"image\":{\"uri\":\"local/busybox\"}" + b" " * 1000,
              b"[" * 5000 + b"]" * 5000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000]


def valid_metadata_patch(b):
    """Any object of string (or null) values is a valid metadata patch: not a hostile one."""
    try:
        j = json.loads(b)
    except (ValueError, RecursionError):  # the deep-nesting bodies are too deep for Python too
        return False
    return isinstance(j, dict) and all(isinstance(v, str) or v is None for v in j.values())


def phase_json(n):
    for i in range(n):
        m, p = ROUTES[i % len(ROUTES)]
        b = BAD_BODIES[(i // len(ROUTES)) % len(BAD_BODIES)]
        if i % 7 == 0:  # random bytes
            b = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
        if p.endswith("/metadata") and valid_metadata_patch(b):
            b = b"{\"k\":{\"nested\":1}}"
        send_raw("json", req(m, p, b), what="%s %s %r" % (m, p, b[:60]))


def phase_auth(n):
    # (Leading blanks are HTTP's optional whitespace: "\tKEY" is the right key, not a hostile one.)
    keys = [None, "", "nope", "x" * 8000, KEY + "x", KEY[:-1], KEY.upper(), KEY + " " + KEY]
    for i in range(n):
        k = keys[i % len(keys)]
        h = {} if k is None else {"OPEN-SANDBOX-API-KEY": k}
        send_raw("auth", req("GET", "/v1/sandboxes", headers=h, key=False), what="key %r" % (k or "")[:40])


def phase_method(n):
    methods = ["FOO", "TRACE", "CONNECT", "PROPFIND", "PUT", "OPTIONS", "DELETE", "PATCH", "get", "G\x01T", "POST"]
    paths = ["/v1/sandboxes", "/health", "/metrics", "/v1/sandboxes/%s" % SID, "/v1/sandboxes/%s/pause" % SID,
             "/execute", "/v1/images", "/v1/metrics/events"]
    for i in range(n):
        m = methods[i % len(methods)]
        p = paths[(i // len(methods)) % len(paths)]
        if m == "POST" and p in ("/v1/sandboxes", "/execute", "/v1/metrics/events", "/v1/sandboxes/%s/pause" % SID):
            m = "PUT"  # POST is their legitimate method
        if m == "DELETE" and p == "/v1/sandboxes/%s" % SID:
            m = "PURGE"  # never delete the bystander sandbox
        # Lower-case and control-character methods are not HTTP tokens: the HTTP layer may refuse them.
        send_raw("method", req(m, p), limit_ok=m in ("get", "G\x01T"), what="%s %s" % (m, p))


def phase_path(n):
    fake = "00000000-0000-4000-8000-000000000000"
    paths = ["/sandboxes/../proxy/44772/", "/sandboxes/%2e%2e/proxy/44772/x", "/sandboxes//proxy/44772",
             "/v1/sandboxes/%s%%2Fproxy%%2F44772" % SID, "/sandboxes/%s/proxy/0" % SID,
             "/sandboxes/%s/proxy/99999" % SID, "/sandboxes/%s/proxy/-1" % SID, "/sandboxes/%s/proxy/44772x" % SID,
             "/sandboxes/%s/proxy/44772/../../../v1/sandboxes" % fake, "/sandboxes/%s/proxy/1/%%2e%%2e/%%2e%%2e" % fake,
             "/sandboxes/%s/proxy/44772//etc/passwd" % fake, "/sandboxes/%s%%00/proxy/44772" % SID,
             "/sandboxes/" + "a" * 3000 + "/proxy/44772", "/v1/sandboxes/..", "/v1/sandboxes/../../etc/passwd",
             "/v1/sandboxes/%2e%2e%2f%2e%2e%2fetc", "//v1/sandboxes/x/y/z/w/v/u/t",
             "/v1/images/..%2f..%2f..%2fetc", "/v1/sandboxes/%s/endpoints/%%34%%34%%37%%37%%32x" % SID,
             "/v1/sandboxes?page=-1", "/v1/sandboxes?pageSize=1e9", "/v1/sandboxes?metadata=%ff%fe",
             "/v1/sandboxes?metadata=a%3D%00", "/v1/sandboxes/%s%%00" % SID,
             "/v1/sandboxes?metadata=" + "k%3Dv%26" * 500, "/v1/sandboxes?pageSize=0&state=" + "&state=x" * 200,
             "/%00", "/v1/sandboxes/%s/proxy/44772/ping" % fake,
             # (a plain proxied /ping to the bystander is a legitimate request: the proxy route is
             # authorized by the sandbox id, SECURITY.md section 5)
             "/sandboxes/%s/proxy/44772/..%%2f..%%2fping" % SID, "/sandboxes/%s/proxy/44772/%%2e%%2e/ping" % SID]
    for i in range(n):
        p = paths[i % len(paths)]
        m = "GET" if i % 3 else "POST"
        # The bystander's agent answers its own port (401 without its token): still a 4xx JSON.
        send_raw("path", req(m, p, b"{}" if m == "POST" else b""), what="%s %s" % (m, p))


def phase_body(n):
    for i in range(n):
        size = [70 * 1024, 1 << 20, 4 << 20][i % 3]
        if i % 2:  # declared length
            raw = req("POST", "/v1/sandboxes", b"{\"x\":\"" + b"a" * size + b"\"}")
        else:  # chunked, no declared length
            chunk = b"a" * 65536
            body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(size // 65536)) + b"0\r\n\r\n"
            raw = ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nOPEN-SANDBOX-API-KEY: %s\r\nConnection: close\r\n"
                   "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" % KEY).encode() + body
        # Over --max-body: 413 JSON when the length is declared; a chunked one is cut (closed).
        send_raw("body", raw, limit_ok=not (i % 2), what="body %d %s" % (size, "declared" if i % 2 else "chunked"))
    # A declared length far over the limit with no body following: answered or closed, never held.
    for i in range(max(1, n // 10)):
        raw = ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nOPEN-SANDBOX-API-KEY: %s\r\nContent-Length: 99999999999\r\n"
               "Connection: close\r\n\r\n{" % KEY).encode()
        send_raw("body", raw, limit_ok=True, what="content-length 99999999999")


def phase_header(n):
    for i in range(n):
        if i % 3 == 0:
            h = {"X-Big": "a" * (200 * 1024)}
        elif i % 3 == 1:
            h = {"X-H%d" % k: "v" * 100 for k in range(2000)}
        else:
            h = {"X-Request-ID": "r" * 5000, "Cookie": "c" * 20000}
        send_raw("header", req("GET", "/v1/sandboxes", headers=h), limit_ok=True, what="headers %d" % (i % 3))


def phase_raw(n):
    k = ("OPEN-SANDBOX-API-KEY: %s\r\n" % KEY).encode()
    raws = [b"\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
            b"GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            # request smuggling shapes, with the key: apid must refuse them (400), not pick one
            b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n" + k + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\n" + k + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"GET /v1/sandboxes HTTP/1.1\nHost: x\n\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\n\r\n",
            b"GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\n \tcontinued\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]
    for i in range(n):
        # Not HTTP, or not the HTTP apid speaks: the HTTP layer answers or closes (a limit), and a
        # well-formed one (GET / HTTP/1.1 without Host) is a 4xx JSON or MHD's 400.
        send_raw("raw", raws[i % len(raws)], limit_ok=True, half_close=True)


def phase_slow(n, seconds=8.0):
    """n connections, each sending a request head one byte every 0.5 s for `seconds`."""
    socks = []
    head = req("GET", "/v1/sandboxes")
    for _ in range(n):
        try:
            socks.append([socket.create_connection((HOST, PORT), timeout=5), 0])
        except OSError:
            record("slow", "connect", None, None, "connect refused", True)
    end = time.time() + seconds
    while time.time() < end:
        for sp in socks:
            s, off = sp
            if s is None or off >= len(head) - 4:  # never finish the head
                continue
            try:
                s.send(head[off:off + 1])
                sp[1] += 1
            except OSError:
                sp[0] = None
        time.sleep(0.5)
    for s, _ in socks:
        if s is not None:
            s.close()
        record("slow", "slowloris", None, None, "closed", True)


def phase_idle(n, seconds=8.0):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((HOST, PORT), timeout=5))
        except OSError:
            break
    # Over the connection limit, MHD accepts and closes at once: count those.
    closed = 0
    time.sleep(seconds)
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    with lock:
        stats.setdefault("idle_opened", []).append(len(socks))
        stats.setdefault("idle_closed_by_server", []).append(closed)
    for _ in range(len(socks)):
        record("idle", "idle", None, None, "closed", True)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Fixed shares of TOTAL; the slow and idle phases count one per connection.
    share = {"json": 0.40, "auth": 0.06, "method": 0.12, "path": 0.20, "body": 0.006, "header": 0.01, "raw": 0.05}
    counts = {k: max(1, int(TOTAL * v)) for k, v in share.items()}
    counts["slow"] = SLOW
    counts["idle"] = max(0, TOTAL - sum(counts.values()))
    stats["plan"] = counts
    t0 = time.time()
    # The slow clients and the idle connections run alongside the request phases.
    bg = [threading.Thread(target=phase_slow, args=(counts["slow"],)),
          threading.Thread(target=phase_idle, args=(min(counts["idle"], IDLE),))]
    for t in bg:
        t.start()
    workers = []
    for name in ("json", "auth", "method", "path", "body", "header", "raw"):
        f = globals()["phase_" + name]
        # Two threads per phase: apid serves each connection on its own thread.
        for part in (counts[name] // 2, counts[name] - counts[name] // 2):
            workers.append(threading.Thread(target=f, args=(part,)))
    for t in workers:
        t.start()
    for t in workers + bg:
        t.join()
    # Idle connections beyond IDLE (the connection limit test) come last, alone.
    rest = max(counts["idle"] - min(counts["idle"], IDLE), OVER)
    phase_idle(rest, seconds=3.0)
    stats["seconds"] = round(time.time() - t0, 1)
    stats.pop("_seen", None)
    with open(OUT, "w") as f:
        json.dump(stats, f, indent=1)


main()
