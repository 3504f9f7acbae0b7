#!/usr/bin/env python3
"""A local emulator of the three clouds codesrcfs reads: Alibaba PAI (AIWorkSpace
2021-02-04, ACS3-HMAC-SHA256), Volcengine cp (2023-05-01, HMAC-SHA256) and Codeup
(x-yunxiao-token). One loopback port serves all three, routed as the real ones are;
every request's signature or token is verified and answered with the real error shape.

Test and demo tooling, standard library only. See README.md beside this file."""
import argparse
import copy
import hashlib
import hmac
import json
import random
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAI_VERSION = "2021-02-04"
VOLC_VERSION = "2023-05-01"
CLOCK_SKEW = 15 * 60

# ---------------------------------------------------------------------------- signing


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rfc3986(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(raw_query: str) -> str:
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    enc = sorted((rfc3986(k), rfc3986(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def parse_auth(value: str, scheme: str):
    """'SCHEME Credential=..,SignedHeaders=..,Signature=..' → dict, or None."""
    if not value or not value.startswith(scheme + " "):
        return None
    out = {}
    for part in value[len(scheme) + 1:].split(","):
        k, _, v = part.strip().partition("=")
        out[k] = v
    if not all(k in out for k in ("Credential", "SignedHeaders", "Signature")):
        return None
    return out


def acs3_signature(secret, method, path, raw_query, headers, signed, body_hash):
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    creq = "\n".join([method, path, canonical_query(raw_query), canon_headers,
                      ";".join(signed), body_hash])
    sts = "ACS3-HMAC-SHA256\n" + sha256_hex(creq.encode())
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def volc_signature(secret, method, path, raw_query, headers, signed, body_hash, xdate, scope):
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    creq = "\n".join([method, path, canonical_query(raw_query), canon_headers,
                      ";".join(signed), body_hash])
    sts = "\n".join(["HMAC-SHA256", xdate, scope, sha256_hex(creq.encode())])
    date, region, service, _ = scope.split("/")
    k = secret.encode()
    for part in (date, region, service, "request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()


class ApiError(Exception):
    def __init__(self, status, code, message, codeN=None):
        super().__init__(message)
        self.status, self.code, self.message, self.codeN = status, code, message, codeN


def verify_acs3(method, path, raw_query, headers, body, keys, sts_token, nonces, now):
    """Raise ApiError as PAI would for a wrongly signed request. headers: lower-cased."""
    auth = parse_auth(headers.get("authorization", ""), "ACS3-HMAC-SHA256")
    if not auth:
        raise ApiError(400, "IncompleteSignature", "The request signature does not conform "
                       "to Aliyun standards.")
    key_id = auth["Credential"]
    if key_id not in keys:
        raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    signed = auth["SignedHeaders"].split(";")
    needed = {"host"} | {h for h in headers if h.startswith("x-acs-")}
    if signed != sorted(signed) or not needed <= set(signed):
        raise ApiError(400, "IncompleteSignature", "The request signature does not conform "
                       "to Aliyun standards.")
    try:
        t = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
        t = t.replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
    if abs(now - t) > CLOCK_SKEW:
        raise ApiError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value "
                       "is expired.")
    if headers.get("x-acs-version") != PAI_VERSION:
        raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
    if headers.get("x-acs-content-sha256") != sha256_hex(body):
        raise ApiError(400, "SignatureDoesNotMatch", "The request body hash does not match.")
    if sts_token is not None and headers.get("x-acs-security-token") != sts_token:
        raise ApiError(400, "InvalidSecurityToken.Mismatch", "The security token is invalid.")
    want = acs3_signature(keys[key_id], method, path, raw_query, headers, signed,
                          headers.get("x-acs-content-sha256", ""))
    if not hmac.compare_digest(want, auth["Signature"]):
        raise ApiError(400, "SignatureDoesNotMatch", "Specified signature is not matched "
                       "with our calculation.")
    nonce = headers.get("x-acs-signature-nonce", "")
    if not nonce or nonce in nonces:
        raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    nonces.add(nonce)


def verify_volc(method, path, raw_query, headers, body, keys, sts_token, now):
    auth = parse_auth(headers.get("authorization", ""), "HMAC-SHA256")
    if not auth:
        raise ApiError(400, "MissingParameter", "The Authorization header is missing.", 100002)
    cred = auth["Credential"].split("/")
    if len(cred) != 5 or cred[3] != "cp" or cred[4] != "request":
        raise ApiError(401, "SignatureDoesNotMatch", "The credential scope is malformed.", 100010)
    ak = cred[0]
    if ak not in keys:
        raise ApiError(401, "InvalidAccessKey", "The access key is invalid.", 100009)
    signed = auth["SignedHeaders"].split(";")
    if not {"host", "x-date", "x-content-sha256"} <= set(signed):
        raise ApiError(401, "SignatureDoesNotMatch", "Required headers are not signed.", 100010)
    xdate = headers.get("x-date", "")
    try:
        t = datetime.strptime(xdate, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError(400, "InvalidTimestamp", "X-Date is malformed.", 100006)
    if abs(now - t) > CLOCK_SKEW or cred[1] != xdate[:8]:
        raise ApiError(400, "InvalidTimestamp", "The request has expired.", 100006)
    if headers.get("x-content-sha256") != sha256_hex(body):
        raise ApiError(401, "SignatureDoesNotMatch", "The body hash does not match.", 100010)
    if sts_token is not None and headers.get("x-security-token") != sts_token:
        raise ApiError(401, "InvalidAccessKey", "The security token is invalid.", 100009)
    scope = "/".join(cred[1:])
    want = volc_signature(keys[ak], method, path, raw_query, headers, signed,
                          headers["x-content-sha256"], xdate, scope)
    if not hmac.compare_digest(want, auth["Signature"]):
        raise ApiError(401, "SignatureDoesNotMatch", "The request signature we calculated "
                       "does not match the signature you provided.", 100010)


# ---------------------------------------------------------------------------- data

AWKWARD = ["dup", "dup", "dup", "a/b", "a_b", ".", "..", "", "ctl\x01char\x7f", "é" * 150,
           "代码源-中文名", "tilde~1", "x" * 300, "new\nline", "  spaced  "]


def iso_z(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_cn(t, millis=False):
    d = datetime.fromtimestamp(t + 8 * 3600, timezone.utc)
    s = d.strftime("%Y-%m-%dT%H:%M:%S")
    return s + (".000" if millis else "") + "+08:00"


def gen_name(rng, i):
    if i < len(AWKWARD):
        return AWKWARD[i]
    return f"{rng.choice(['svc', 'lib', 'model', 'tool', 'app'])}-{i}"


def gen_pai(n, rng, git_base):
    base = 1700000000
    workspaces = []
    for ws, count in (("1001", n), ("1002", min(n, 5))):
        sources = []
        for i in range(count):
            created = base + i - (1 if i % 10 == 9 else 0)  # some equal creation times
            name = gen_name(rng, i) if ws == "1001" else f"other-{i}"
            sources.append({
                "CodeSourceId": f"code-{ws}-{i:06d}", "DisplayName": name,
                "Description": f"generated {i}", "CodeRepo": f"{git_base}/pai-{ws}-{i}.git",
                "CodeBranch": "" if i % 5 == 4 else rng.choice(["main", "master", "dev"]),
                "CodeCommit": "", "CodeRepoUserName": "user" if i % 7 == 0 else "",
                "CodeRepoAccessToken": f"tok-{ws}-{i}-secret" if i % 7 == 0 else "",
                "Accessibility": "PRIVATE" if i % 2 else "PUBLIC", "UserId": "1157290171663117",
                "WorkspaceId": ws, "GmtCreateTime": iso_z(created),
                "GmtModifyTime": iso_z(created + 3600), "MountPath": "/root/code/"})
        workspaces.append({"WorkspaceId": ws, "WorkspaceName": f"ws{ws}", "DisplayName": f"ws{ws}",
                           "Description": "", "Creator": "1", "Status": "ENABLED",
                           "IsDefault": ws == "1001", "GmtCreateTime": iso_z(base - 10),
                           "GmtModifiedTime": iso_z(base - 10), "code_sources": sources})
    return {"workspaces": workspaces}


def gen_volc(n, rng, git_base):
    base = 1700000000
    resources = []
    for i in range(n):
        git = {"Url": f"{git_base}/volc-{i}.git", "UserName": "u", "UserToken": "",
               "Password": "", "AccessKey": "", "SecretKey": "", "CloneDepth": 0}
        if i % 4 == 0:
            git["UserToken"] = f"volc-token-{i}-secret"
        if i % 6 == 1:
            git["Password"] = f"volc-pass-{i}-secret"
            git["AccessKey"] = f"volc-ak-{i}-secret"
            git["SecretKey"] = f"volc-sk-{i}-secret"
        resources.append({
            "Id": f"{i:032x}", "WorkspaceId": "ws-0001", "Name": gen_name(rng, i),
            "Description": "", "Type": rng.choice(["GitHub", "GitLab", "Gitee", "Git", "Codeup"]),
            "Configuration": {"Git": git}, "CreateTime": iso_cn(base + i),
            "UpdateTime": iso_cn(base + i + 60), "Creator": {"AccountId": 2450649900, "UserId": 0}})
    return {"workspaces": [{"Id": "ws-0001", "Name": "demo", "Description": "",
                            "CreateTime": iso_cn(base), "UpdateTime": iso_cn(base),
                            "resources": resources}]}


def gen_codeup(n, rng, git_base):
    org, base = "org-1", 1700000000
    groups, gid = [], 1000

    def add_group(path, parent_full, parent_id):
        nonlocal gid
        gid += 1
        full = f"{parent_full}/{path}"
        groups.append({"id": gid, "name": path.upper(), "path": path, "fullPath": full,
                       "kind": "group", "nameWithNamespace": full, "pathWithNamespace": full,
                       "parentId": parent_id, "visibility": "private",
                       "webUrl": f"https://codeup.example/{full}", "avatarUrl": ""})
        return gid, full

    for top in ("platform", "ml", "web"):
        tid, tfull = add_group(top, org, 1)
        for sub in ("core", "tools"):
            sid, sfull = add_group(sub, tfull, tid)
            add_group("deep", sfull, sid)
    homes = [(None, org)] + [(g["id"], g["fullPath"]) for g in groups]
    repos = []
    for i in range(n):
        ns_id, ns_full = homes[i % len(homes)]
        path = f"repo-{i}" if i % 11 else "url"  # a repository may be called like a file
        full = f"{ns_full}/{path}"
        repos.append({
            "id": 5000 + i, "name": path, "path": path, "description": "",
            "pathWithNamespace": full, "nameWithNamespace": full,
            "namespaceId": ns_id if ns_id else 1, "visibility": "private",
            "webUrl": f"https://codeup.example/{full}",
            "httpUrlToRepo": f"{git_base}/codeup-{i}.git",
            "sshUrlToRepo": f"git@codeup.example:{full}.git",
            "defaultBranch": rng.choice(["master", "main", "develop"]),
            "createdAt": iso_cn(base + i, True), "lastActivityAt": iso_cn(base + i + 99, True),
            "updatedAt": iso_cn(base + i + 99, True), "archived": i % 9 == 8})
    return {"organizations": [{"id": org, "namespaces": groups, "repositories": repos}]}


# ---------------------------------------------------------------------------- state

DEFAULT_KNOBS = {"latency_ms": 0, "fail_5xx": 0.0, "throttle": 0.0, "retry_after": 1,
                 "reset": 0.0, "truncate": 0.0, "malformed": 0.0, "stall": 0.0, "stall_s": 30,
                 "down": False, "max_page_size": 100, "codeup_headers": True,
                 "codeup_list_full": True, "mutate": None}


class State:
    def __init__(self, data, args):
        self.lock = threading.RLock()  # handlers call helpers that lock too
        self.data = data
        self.stats = Counter()
        self.knobs = dict(DEFAULT_KNOBS)
        self.rng = random.Random(args.seed)
        self.nonces = set()
        self.list_requests = Counter()
        ak, _, sk = args.pai_key.partition(":")
        self.pai_keys = {ak: sk}
        self.pai_sts = args.pai_sts
        vak, _, vsk = args.volc_key.partition(":")
        self.volc_keys = {vak: vsk}
        self.volc_sts = args.volc_sts
        self.codeup_token = args.codeup_token
        self.serial = 0  # bumped by every change of the data
        self.views = {}

    def roll(self, knob):
        with self.lock:
            return self.rng.random() < float(self.knobs.get(knob) or 0)

    def count(self, key):
        with self.lock:
            self.stats[key] += 1
            self.stats["total"] += 1

    def count_list(self, provider):
        """Counts a list request and applies a pending mutation when its time has come."""
        with self.lock:
            self.list_requests[provider] += 1
            m = self.knobs.get("mutate")
            if m and m.get("provider", "pai") == provider and not m.get("done") \
                    and self.list_requests[provider] >= int(m.get("after_requests", 1)):
                m["done"] = True
                mutate(self, provider, int(m.get("add", 0)), int(m.get("remove", 0)))


def mutate(state, provider, add, remove):
    """Add entries (newest) and remove the oldest ones, shifting every offset page."""
    state.serial += 1
    now = int(time.time())
    if provider == "pai":
        ws = state.data["pai"]["workspaces"][0]
        del ws["code_sources"][:remove]
        for k in range(add):
            ws["code_sources"].append({
                "CodeSourceId": f"code-new-{state.serial}-{k}", "DisplayName": f"new-{state.serial}-{k}",
                "CodeRepo": f"https://git.example.com/new-{k}.git", "CodeBranch": "main",
                "CodeRepoAccessToken": "", "WorkspaceId": ws["WorkspaceId"],
                "GmtCreateTime": iso_z(now + k), "GmtModifyTime": iso_z(now + k)})
    elif provider == "volc":
        ws = state.data["volc"]["workspaces"][0]
        del ws["resources"][:remove]
        for k in range(add):
            ws["resources"].append({
                "Id": f"new{state.serial:08d}{k:08d}", "WorkspaceId": ws["Id"],
                "Name": f"new-{state.serial}-{k}", "Type": "Git",
                "Configuration": {"Git": {"Url": f"https://git.example.com/new-{k}.git"}},
                "CreateTime": iso_cn(now + k), "UpdateTime": iso_cn(now + k)})


# ---------------------------------------------------------------------------- handler


def page_of(items, page, size):
    return items[(page - 1) * size: page * size]


def int_param(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloud-emulator/1.0"
    timeout = 60

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("emulator: " + (fmt % args) + "\n")

    # --- plumbing

    def read_body(self):
        n = int_param(self.headers.get("Content-Length"), 0)
        return self.rfile.read(n) if 0 < n <= 1 << 20 else b""

    def send(self, status, obj, headers=None, raw=None):
        body = raw if raw is not None else json.dumps(obj, ensure_ascii=False).encode()
        st = self.server.state
        if not self.path.startswith("/_emu/"):
            if st.roll("truncate"):
                st.count("fault.truncate")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            if st.roll("malformed"):
                st.count("fault.malformed")
                status, body = 200, b'{"CodeSources": [ {"broken'
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def headers_lower(self):
        return {k.lower(): v for k, v in self.headers.items()}

    # --- entry points

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_HEAD(self):
        self.send(404, {})

    def dispatch(self, method):
        try:
            self.route(method)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # the emulator answers garbage, it never dies of it
            sys.stderr.write(f"emulator: internal error on {self.path!r}: {e!r}\n")
            try:
                self.send(500, {"message": "emulator internal error"})
            except OSError:
                pass

    def route(self, method):
        u = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        if u.path.startswith("/_emu/"):
            return self.control(method, u.path, body)
        if u.path.startswith("/api/v1/"):
            provider = "pai"
        elif u.path.startswith("/oapi/v1/"):
            provider = "codeup"
        elif u.path == "/" and "Action=" in u.query:
            provider = "volc"
        else:
            return self.send(404, {"message": "no such path"})
        st = self.server.state
        with st.lock:
            knobs = dict(st.knobs)
        if knobs["down"]:
            st.count("fault.down")
            return self.drop()
        if knobs["latency_ms"]:
            time.sleep(float(knobs["latency_ms"]) / 1000)
        if st.roll("reset"):
            st.count("fault.reset")
            return self.drop()
        if st.roll("stall"):
            st.count("fault.stall")
            time.sleep(float(knobs["stall_s"]))
        getattr(self, provider)(method, u, body, knobs)

    def control(self, method, path, body):
        st = self.server.state
        if path == "/_emu/stats":
            with st.lock:
                return self.send(200, dict(st.stats))
        if path == "/_emu/reset-stats" and method == "POST":
            with st.lock:
                st.stats.clear()
            return self.send(200, {})
        if path == "/_emu/data":
            with st.lock:
                return self.send(200, st.data)
        if path == "/_emu/config" and method == "POST":
            try:
                new = json.loads(body or b"{}")
            except ValueError:
                return self.send(400, {"message": "bad JSON"})
            with st.lock:
                for k, v in new.items():
                    if k not in DEFAULT_KNOBS:
                        return self.send(400, {"message": f"unknown knob {k}"})
                    st.knobs[k] = copy.deepcopy(v)
                if "mutate" in new:
                    st.list_requests.clear()
                return self.send(200, st.knobs)
        return self.send(404, {"message": "no such control"})

    def injected(self, provider, action, knobs):
        """5xx and throttling faults, answered each cloud's way. True when answered."""
        st = self.server.state
        if st.roll("fail_5xx"):
            st.count("fault.5xx")
            self.error(provider, action, ApiError(503, "ServiceUnavailable",
                                                  "The service is temporarily unavailable.",
                                                  100014))
            return True
        if st.roll("throttle"):
            st.count("fault.throttle")
            err = {"pai": ApiError(400, "Throttling.User", "Request was denied due to user "
                                   "flow control."),
                   "volc": ApiError(429, "FlowLimitExceeded", "Flow limit exceeded.", 100018),
                   "codeup": ApiError(429, "TooManyRequests", "Too many requests.")}[provider]
            self.error(provider, action, err, {"Retry-After": str(knobs["retry_after"])})
            return True
        return False

    def error(self, provider, action, e, headers=None):
        rid = str(uuid.uuid4()).upper()
        h = dict(headers or {})
        if provider == "pai":
            h["x-acs-request-id"] = rid
            body = {"RequestId": rid, "HostId": "aiworkspace.cn-hangzhou.aliyuncs.com",
                    "Code": e.code, "Message": e.message,
                    "Recommend": "https://api.aliyun.com/troubleshoot?q=" + e.code}
        elif provider == "volc":
            err = {"Code": e.code, "Message": e.message}
            if e.codeN:
                err["CodeN"] = e.codeN
            body = {"ResponseMetadata": {"RequestId": rid, "Action": action,
                                         "Version": VOLC_VERSION, "Service": "cp",
                                         "Region": "cn-beijing", "Error": err}}
        else:
            h["x-request-id"] = rid
            body = {"errorCode": e.code, "errorMessage": e.message}
        self.send(e.status, body, h)

    # --- PAI

    def pai(self, method, u, body, knobs):
        st = self.server.state
        h = self.headers_lower()
        action = h.get("x-acs-action", "?")
        st.count(f"pai.{action}")
        try:
            with st.lock:
                verify_acs3(method, u.path, u.query, h, body, st.pai_keys, st.pai_sts,
                            st.nonces, time.time())
        except ApiError as e:
            return self.error("pai", action, e)
        if self.injected("pai", action, knobs):
            return
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        rid = str(uuid.uuid4()).upper()
        with st.lock:
            if u.path == "/api/v1/workspaces" and action == "ListWorkspaces":
                ans = self.pai_workspaces(q, knobs)
            elif u.path == "/api/v1/codesources" and action == "ListCodeSources":
                st.count_list("pai")
                ans = self.pai_codesources(q, knobs)
            elif u.path.startswith("/api/v1/codesources/") and action == "GetCodeSource":
                ans = self.pai_get(urllib.parse.unquote(u.path.rsplit("/", 1)[1]))
            else:
                ans = ApiError(404, "InvalidApi.NotFound", "Specified api is not found.")
        if isinstance(ans, ApiError):
            return self.error("pai", action, ans)
        ans["RequestId"] = rid
        self.send(200, ans, {"x-acs-request-id": rid})

    def pai_size(self, q, knobs):
        size = int_param(q.get("PageSize"), 20)
        return max(1, min(size, int(knobs["max_page_size"])))

    def pai_workspaces(self, q, knobs):
        wss = self.server.state.data.get("pai", {}).get("workspaces", [])
        if q.get("WorkspaceIds"):
            ids = set(q["WorkspaceIds"].split(","))
            wss = [w for w in wss if w["WorkspaceId"] in ids]
        if q.get("WorkspaceName"):
            wss = [w for w in wss if q["WorkspaceName"] in w.get("WorkspaceName", "")]
        page, size = int_param(q.get("PageNumber"), 1), self.pai_size(q, knobs)
        items = [{k: v for k, v in w.items() if k != "code_sources"}
                 for w in page_of(wss, page, size)]
        return {"Workspaces": items, "TotalCount": len(wss)}

    def pai_codesources(self, q, knobs):
        # Sorting 100,000 entries for every page would make the emulator, not the client,
        # the bottleneck of a benchmark: keep each sorted view until the data changes.
        st = self.server.state
        key = (st.serial, q.get("WorkspaceId"), q.get("DisplayName"), q.get("SortBy"),
               q.get("Order"))
        items = st.views.get(key)
        if items is None:
            items = self.pai_sorted(q)
            st.views = {key: items}
        page, size = int_param(q.get("PageNumber"), 1), self.pai_size(q, knobs)
        return {"CodeSources": copy.deepcopy(page_of(items, page, size)), "TotalCount": len(items)}

    def pai_sorted(self, q):
        items = []
        for w in self.server.state.data.get("pai", {}).get("workspaces", []):
            if not q.get("WorkspaceId") or w["WorkspaceId"] == q["WorkspaceId"]:
                items.extend(w["code_sources"])
        if q.get("DisplayName"):
            needle = q["DisplayName"].lower()
            items = [c for c in items if needle in c.get("DisplayName", "").lower()]
        key = {"GmtModifyTime": "GmtModifyTime", "DisplayName": "DisplayName",
               "CodeSourceId": "CodeSourceId"}.get(q.get("SortBy"), "GmtCreateTime")
        return sorted(items, key=lambda c: (c.get(key, ""), c["CodeSourceId"]),
                      reverse=q.get("Order", "ASC").upper() == "DESC")

    def pai_get(self, ident):
        for w in self.server.state.data.get("pai", {}).get("workspaces", []):
            for c in w["code_sources"]:
                if c["CodeSourceId"] == ident:
                    return copy.deepcopy(c)
        return ApiError(404, "CodeSourceNotFound", "The code source does not exist.")

    # --- Volcengine

    def volc(self, method, u, body, knobs):
        st = self.server.state
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        action = q.get("Action", "?")
        st.count(f"volc.{action}")
        try:
            with st.lock:
                verify_volc(method, u.path, u.query, self.headers_lower(), body, st.volc_keys,
                            st.volc_sts, time.time())
            if method != "POST" or q.get("Version") != VOLC_VERSION:
                raise ApiError(400, "InvalidActionOrVersion", "Action or version is invalid.",
                               100003)
            try:
                req = json.loads(body or b"{}")
                assert isinstance(req, dict)
            except (ValueError, AssertionError):
                raise ApiError(400, "InvalidParameter", "The body is not a JSON object.", 100004)
            size = req.get("PageSize", 10)
            page = req.get("PageNumber", 1)
            if not isinstance(size, int) or not 1 <= size <= 100:
                raise ApiError(400, "InvalidParameter", "PageSize must be from 1 to 100.", 100004)
            if not isinstance(page, int) or page < 1:
                raise ApiError(400, "InvalidParameter", "PageNumber must be 1 or more.", 100004)
        except ApiError as e:
            return self.error("volc", action, e)
        if self.injected("volc", action, knobs):
            return
        with st.lock:
            if action == "ListWorkspaces":
                result = self.volc_workspaces(req, page, size)
            elif action == "ListResources":
                st.count_list("volc")
                result = self.volc_resources(req, page, size)
            else:
                result = ApiError(404, "InvalidActionOrVersion", "Action is invalid.", 100003)
        if isinstance(result, ApiError):
            return self.error("volc", action, result)
        meta = {"RequestId": uuid.uuid4().hex.upper(), "Action": action, "Version": VOLC_VERSION,
                "Service": "cp", "Region": "cn-beijing"}
        self.send(200, {"ResponseMetadata": meta, "Result": result})

    def volc_filter(self, items, flt, key):
        if not isinstance(flt, dict):
            return items
        if flt.get("Name"):
            items = [i for i in items if str(flt["Name"]).lower() in i.get(key, "").lower()]
        if flt.get("Ids"):
            items = [i for i in items if i["Id"] in flt["Ids"]]
        if flt.get("Types"):
            items = [i for i in items if i.get("Type") in flt["Types"]]
        return items

    def volc_workspaces(self, req, page, size):
        wss = self.server.state.data.get("volc", {}).get("workspaces", [])
        wss = self.volc_filter(wss, req.get("Filter"), "Name")
        items = [{k: v for k, v in w.items() if k != "resources"} for w in page_of(wss, page, size)]
        return {"Items": items, "PageNumber": page, "PageSize": size, "TotalCount": len(wss)}

    def volc_resources(self, req, page, size):
        ws = req.get("WorkspaceId")
        if not ws:
            return ApiError(400, "MissingParameter", "WorkspaceId is required.", 100002)
        items = []
        for w in self.server.state.data.get("volc", {}).get("workspaces", []):
            if w["Id"] == ws:
                items = w["resources"]
        items = self.volc_filter(items, req.get("Filter"), "Name")
        return {"Items": copy.deepcopy(page_of(items, page, size)), "PageNumber": page,
                "PageSize": size, "TotalCount": len(items)}

    # --- Codeup

    def codeup(self, method, u, body, knobs):
        st = self.server.state
        parts = u.path.split("/")
        action = {"namespaces": "ListNamespaces", "repositories": "ListRepositories"}.get(
            parts[-1], "GetRepository" if "repositories" in parts else "GetCurrentUser"
            if u.path == "/oapi/v1/platform/user" else "Unknown")
        st.count(f"codeup.{action}")
        rid = str(uuid.uuid4()).upper()
        if self.headers.get("x-yunxiao-token") != st.codeup_token:
            return self.error("codeup", action, ApiError(401, "InvalidTokenError",
                                                         "The token is invalid."))
        if self.injected("codeup", action, knobs):
            return
        if method != "GET":
            return self.error("codeup", action, ApiError(400, "BadRequest", "GET only."))
        if u.path == "/oapi/v1/platform/user":
            return self.send(200, {"id": "u-1", "name": "tester", "username": "tester"},
                             {"x-request-id": rid})
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if len(parts) < 7 or parts[1:5] != ["oapi", "v1", "codeup", "organizations"]:
            return self.error("codeup", action, ApiError(404, "NotFound", "No such path."))
        org_id = urllib.parse.unquote(parts[5])
        with st.lock:
            orgs = [o for o in st.data.get("codeup", {}).get("organizations", [])
                    if o["id"] == org_id]
            if not orgs:
                ans = ApiError(403, "Forbidden.InvalidUser.UserNotInCurrentOrganization",
                               "The user is not in the organization.")
            elif action == "ListNamespaces":
                ans = self.codeup_namespaces(orgs[0], q)
            elif action == "ListRepositories":
                ans = self.codeup_repositories(orgs[0], q, knobs)
            elif action == "GetRepository":
                ans = self.codeup_get(orgs[0], urllib.parse.unquote("/".join(parts[7:])))
            else:
                ans = ApiError(404, "NotFound", "No such path.")
        if isinstance(ans, ApiError):
            return self.error("codeup", action, ans)
        if isinstance(ans, dict):
            return self.send(200, ans, {"x-request-id": rid})
        items, total, page, size = ans
        h = {"x-request-id": rid}
        if knobs["codeup_headers"]:
            pages = max(1, -(-total // size))
            h.update({"x-total": str(total), "x-total-pages": str(pages), "x-page": str(page),
                      "x-per-page": str(size), "x-prev-page": str(page - 1) if page > 1 else "",
                      "x-next-page": str(page + 1) if page < pages else ""})
        self.send(200, items, h)

    def codeup_page(self, items, q):
        page, size = int_param(q.get("page"), 1), int_param(q.get("perPage"), 20)
        if not 1 <= size <= 100 or page < 1:
            return ApiError(400, "BadRequest", "perPage must be from 1 to 100.")
        return copy.deepcopy(page_of(items, page, size)), len(items), page, size

    def codeup_sorted(self, items, q, default_key):
        key = {"created_at": "createdAt", "updated_at": "updatedAt", "name": "name",
               "path": "path", "last_activity_at": "lastActivityAt"}.get(q.get("orderBy"),
                                                                          default_key)
        return sorted(items, key=lambda i: (str(i.get(key, "")), i["id"]),
                      reverse=q.get("sort", "desc") == "desc")

    def codeup_namespaces(self, org, q):
        groups = org["namespaces"]
        if q.get("parentId"):
            groups = [g for g in groups if str(g.get("parentId")) == q["parentId"]]
        else:
            groups = [g for g in groups if g["fullPath"].count("/") == 1]
        if q.get("search"):
            s = q["search"].lower()
            groups = [g for g in groups if s in g["path"].lower() or s in g["name"].lower()]
        return self.codeup_page(self.codeup_sorted(groups, q, "id"), q)

    def codeup_repositories(self, org, q, knobs):
        repos = org["repositories"]
        if q.get("search"):
            repos = [r for r in repos if q["search"].lower() in r["path"].lower()]
        if q.get("archived") in ("true", "false"):
            repos = [r for r in repos if r.get("archived") == (q["archived"] == "true")]
        ans = self.codeup_page(self.codeup_sorted(repos, q, "lastActivityAt"), q)
        if not isinstance(ans, ApiError) and not knobs["codeup_list_full"]:
            for r in ans[0]:
                r.pop("httpUrlToRepo", None)
                r.pop("defaultBranch", None)
        return ans

    def codeup_get(self, org, ident):
        for r in org["repositories"]:
            if str(r["id"]) == ident or r["pathWithNamespace"] == ident:
                return copy.deepcopy(r)
        return ApiError(404, "NotFound", "The repository does not exist.")


# ---------------------------------------------------------------------------- main


def build_data(args):
    data = {}
    if args.data:
        with open(args.data, encoding="utf-8") as f:
            data = json.load(f)
    rng = random.Random(args.seed)
    if args.generate_pai is not None:
        data["pai"] = gen_pai(args.generate_pai, rng, args.git_base + "/pai")
    if args.generate_volc is not None:
        data["volc"] = gen_volc(args.generate_volc, rng, args.git_base + "/volc")
    if args.generate_codeup is not None:
        data["codeup"] = gen_codeup(args.generate_codeup, rng, args.git_base + "/codeup")
    return data


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--data", help="JSON data set to serve")
    p.add_argument("--dump-data", help="write the data set served to this file")
    p.add_argument("--generate-pai", type=int, metavar="N")
    p.add_argument("--generate-volc", type=int, metavar="N")
    p.add_argument("--generate-codeup", type=int, metavar="N")
    p.add_argument("--git-base", default="https://git.example.com",
                   help="prefix of generated clone URLs")
    p.add_argument("--pai-key", default="testak:testsecret", metavar="ID:SECRET")
    p.add_argument("--pai-sts", default=None, metavar="TOKEN")
    p.add_argument("--volc-key", default="volcak:volcsecret", metavar="AK:SK")
    p.add_argument("--volc-sts", default=None, metavar="TOKEN")
    p.add_argument("--codeup-token", default="pt-testtoken")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--max-page-size", type=int, default=100)
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = build_data(args)
    if args.dump_data:
        with open(args.dump_data, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(data, args)
    server.state.knobs["latency_ms"] = args.latency_ms
    server.state.knobs["max_page_size"] = args.max_page_size
    server.verbose = args.verbose
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(f"{port}\n")
    print(f"PORT {port}", flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
