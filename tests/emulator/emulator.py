#!/usr/bin/env python3
"""A local emulator of the three clouds codesrcfs reads: Alibaba PAI (AIWorkSpace
2021-02-04, ACS3-HMAC-SHA256), Volcengine cp (2023-05-01, HMAC-SHA256 V4) and Codeup
(x-yunxiao-token). One loopback port serves all three, routed as the real ones are;
every request's signature or token is verified and answered with the real error shape.
It also injects faults, changes its data while a listing is paged, counts what it
served (requests, connections, TLS handshakes), serves https with a given certificate,
and serves the PAI tree as plain HTTP directory listings under /_tree/.

Test and demo tooling, Python standard library only. See README.md beside this file."""
import argparse
import hashlib
import hmac
import html
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import names_rules  # noqa: E402  tests/names_rules.py, shared with the integration tests

PAI_VERSION = "2021-02-04"
VOLC_VERSION = "2023-05-01"
CLOCK_SKEW = 15 * 60          # both clouds refuse a request dated further off than this
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MAX_BODY = 1 << 20            # request bodies are small JSON; more is garbage
PAGE_CACHE_BYTES = 64 << 20   # encoded pages kept (Store.page_json); more empties the cache
SOCKET_TIMEOUT = 30           # idle keep-alive connections and slow clients are dropped
PAI_FIELDS = ("CodeSourceId", "DisplayName", "Description", "CodeRepo", "CodeBranch",
              "CodeCommit", "CodeRepoUserName", "CodeRepoAccessToken", "Accessibility",
              "UserId", "WorkspaceId", "GmtCreateTime", "GmtModifyTime", "MountPath")
SECRET_FIELDS = ("CodeRepoAccessToken", "UserToken", "Password", "AccessKey", "SecretKey")

# ============================================================================ signing
# Pure functions: the verifiers below use them, and tests call them on the vectors.


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rfc3986(s: str) -> str:
    """Percent-encode all but A-Z a-z 0-9 - _ . ~ (space is %20, * is %2A)."""
    return urllib.parse.quote(s, safe="-_.~")


def split_query(raw_query: str):
    """[(name, value)] of a raw query, strictly percent-decoded: a '+' stays a '+',
    because both signers send a space as %20 and sign what they send."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        k, _, v = part.partition("=")
        pairs.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))
    return pairs


def canonical_query(raw_query: str) -> str:
    enc = sorted((rfc3986(k), rfc3986(v)) for k, v in split_query(raw_query))
    return "&".join(f"{k}={v}" for k, v in enc)


def canonical_uri(path: str) -> str:
    """Each segment decoded as received, then percent-encoded per RFC 3986."""
    return "/".join(rfc3986(urllib.parse.unquote(seg)) for seg in path.split("/")) or "/"


def canonical_request(method, path, raw_query, headers, signed, body_hash):
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
    return "\n".join([method, canonical_uri(path), canonical_query(raw_query), canon_headers,
                      ";".join(signed), body_hash])


def acs3_signature(secret, method, path, raw_query, headers, signed, body_hash):
    """ACS3-HMAC-SHA256. headers: lower-case names; signed: sorted lower-case names."""
    creq = canonical_request(method, path, raw_query, headers, signed, body_hash)
    sts = "ACS3-HMAC-SHA256\n" + sha256_hex(creq.encode())
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def volc_signing_key(secret, date, region, service):
    k = secret.encode()
    for part in (date, region, service, "request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def volc_signature(secret, method, path, raw_query, headers, signed, body_hash, xdate, scope):
    """Volcengine HMAC-SHA256; scope is YYYYMMDD/region/service/request."""
    creq = canonical_request(method, path, raw_query, headers, signed, body_hash)
    sts = "\n".join(["HMAC-SHA256", xdate, scope, sha256_hex(creq.encode())])
    date, region, service, _ = scope.split("/")
    key = volc_signing_key(secret, date, region, service)
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def parse_auth(value: str, scheme: str):
    """'SCHEME Credential=..,SignedHeaders=..,Signature=..' → dict, or None.
    Alibaba writes no space after the commas, Volcengine one: accept either."""
    if not value or not value.startswith(scheme + " "):
        return None
    out = {}
    for part in value[len(scheme) + 1:].split(","):
        k, _, v = part.strip().partition("=")
        out[k] = v
    if not all(out.get(k) for k in ("Credential", "SignedHeaders", "Signature")):
        return None
    return out


def parse_time(text, fmt):
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


class ApiError(Exception):
    """An answer in the cloud's own error shape: status, code, message (+ Volc CodeN)."""

    def __init__(self, status, code, message, code_n=None, headers=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.code_n = status, code, message, code_n
        self.headers = headers or {}


def pai_incomplete():
    return ApiError(400, "IncompleteSignature",
                    "The request signature does not conform to Aliyun standards.")


def verify_acs3(method, path, raw_query, headers, body, keys, sts_token, nonces, now):
    """Raise ApiError as PAI would for a request that is not correctly signed.
    headers: lower-case names; keys: {key id: secret}; nonces: set-like, remembers
    accepted nonces; sts_token: required token or None."""
    auth = parse_auth(headers.get("authorization", ""), "ACS3-HMAC-SHA256")
    if not auth:
        raise pai_incomplete()
    signed = auth["SignedHeaders"].split(";")
    # The SDKs sign host and every x-acs-* header; a signer that leaves one out is wrong.
    needed = {"host"} | {h for h in headers if h.startswith("x-acs-")}
    if signed != sorted(set(signed)) or not needed <= set(signed):
        raise pai_incomplete()
    t = parse_time(headers.get("x-acs-date"), "%Y-%m-%dT%H:%M:%SZ")
    if t is None:
        raise ApiError(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
    if abs(now - t) > CLOCK_SKEW:
        raise ApiError(400, "InvalidTimeStamp.Expired",
                       "Specified time stamp or date value is expired.")
    nonce = headers.get("x-acs-signature-nonce", "")
    if not nonce:
        raise ApiError(400, "MissingSignatureNonce", "SignatureNonce is mandatory.")
    if nonce in nonces:
        raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    if auth["Credential"] not in keys:
        raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if headers.get("x-acs-content-sha256") != sha256_hex(body):
        raise ApiError(400, "SignatureDoesNotMatch",
                       "The x-acs-content-sha256 header does not match the body.")
    want = acs3_signature(keys[auth["Credential"]], method, path, raw_query, headers, signed,
                          headers["x-acs-content-sha256"])
    if not hmac.compare_digest(want, auth["Signature"]):
        raise ApiError(400, "SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation.")
    if sts_token is not None:
        got = headers.get("x-acs-security-token")
        if not got:
            raise ApiError(403, "InvalidSecurityToken.Malformed",
                           "The security token you provided is missing or malformed.")
        if got != sts_token:
            raise ApiError(403, "InvalidSecurityToken.Mismatch",
                           "The security token you provided does not match the access key.")
    nonces.add(nonce)  # only a request that passed may burn its nonce


def verify_volc(method, path, raw_query, headers, body, keys, sts_token, now):
    """Raise ApiError as Volcengine would for a request that is not correctly signed.
    headers: lower-case names; keys: {access key: secret key}."""
    auth = parse_auth(headers.get("authorization", ""), "HMAC-SHA256")
    if not auth:
        raise ApiError(400, "MissingParameter",
                       "The request is missing the Authorization parameter.", 100002)
    cred = auth["Credential"].split("/")
    if len(cred) != 5 or cred[3] != "cp" or cred[4] != "request":
        raise ApiError(401, "SignatureDoesNotMatch", "The credential scope is malformed.", 100010)
    if cred[0] not in keys:
        raise ApiError(401, "InvalidAccessKey", "The access key is invalid.", 100009)
    signed = auth["SignedHeaders"].split(";")
    if not {"host", "x-date", "x-content-sha256"} <= set(signed):
        raise ApiError(401, "SignatureDoesNotMatch",
                       "host, x-date and x-content-sha256 must be signed.", 100010)
    xdate = headers.get("x-date", "")
    t = parse_time(xdate, "%Y%m%dT%H%M%SZ")
    if t is None or abs(now - t) > CLOCK_SKEW or cred[1] != xdate[:8]:
        raise ApiError(400, "InvalidTimestamp",
                       "The request timestamp is invalid or has expired.", 100006)
    if headers.get("x-content-sha256") != sha256_hex(body):
        raise ApiError(401, "SignatureDoesNotMatch",
                       "The X-Content-Sha256 header does not match the body.", 100010)
    want = volc_signature(keys[cred[0]], method, path, raw_query, headers, signed,
                          headers["x-content-sha256"], xdate, "/".join(cred[1:]))
    if not hmac.compare_digest(want, auth["Signature"]):
        raise ApiError(401, "SignatureDoesNotMatch", "The request signature we calculated "
                       "does not match the signature you provided.", 100010)
    if sts_token is not None and headers.get("x-security-token") != sts_token:
        raise ApiError(401, "InvalidAccessKey", "The security token is invalid.", 100009)


class NonceCache:
    """The nonces seen in the last CLOCK_SKEW seconds: older requests fail on their date
    anyway, so forgetting them keeps memory bounded on long runs."""

    def __init__(self):
        self.seen = {}

    def __contains__(self, nonce):
        return nonce in self.seen

    def add(self, nonce):
        now = time.time()
        self.seen[nonce] = now
        if len(self.seen) > 100000:
            self.seen = {n: t for n, t in self.seen.items() if now - t <= CLOCK_SKEW}


# ============================================================================ data

# Names that stress the docs/design.md §1 rules: duplicates (equal creation times too), '/',
# '.', '..', '', a name that collides with a sanitised one, control characters, names
# over 255 bytes (2- and 3-byte characters), CJK, '~', and a name equal to a suffixed
# name ("dup~<id>").
def awkward_names(id_of):
    return ["dup", "dup", "a/b", "a_b", ".", "..", "", "_.", "dup", "dup",
            "ctl\x01char\x7f", "new\nline\ttab", "é" * 150, "代" * 100, "x" * 300,
            "代码源-中文名", "tilde~1", "dup~" + id_of(1), "Dup", "  spaced  "]


WORDS = ("svc", "lib", "model", "tool", "app", "data", "infer", "train")


def gen_name(rng, i, awkward):
    if i < len(awkward):
        return awkward[i]
    if i % 97 == 50:
        return "dup"                       # a duplicate far from its elders, pages apart
    if i % 113 == 60:
        return "x" * 300 + f"-{i}"         # long names that collide once cut
    return f"{rng.choice(WORDS)}-{i}"


def iso_z(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_cn(t, millis=False):
    """Volcengine and Codeup write local (+08:00) times."""
    d = datetime.fromtimestamp(t + 8 * 3600, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (".000" if millis else "") + "+08:00"


GEN_EPOCH = 1700000000


def pai_source(ws, ident, name, created, url, branch, token):
    return {"CodeSourceId": ident, "DisplayName": name, "Description": f"generated {ident}",
            "CodeRepo": url, "CodeBranch": branch, "CodeCommit": "",
            "CodeRepoUserName": "user" if token else "", "CodeRepoAccessToken": token,
            "Accessibility": "PRIVATE" if token else "PUBLIC", "UserId": "1157290171663117",
            "WorkspaceId": ws, "GmtCreateTime": iso_z(created),
            "GmtModifyTime": iso_z(created + 3600), "MountPath": "/root/code/"}


def pai_workspace(ws, name, sources):
    return {"WorkspaceId": ws, "WorkspaceName": name, "DisplayName": name,
            "Description": "", "Creator": "1157290171663117", "Status": "ENABLED",
            "IsDefault": ws == "1001", "GmtCreateTime": iso_z(GEN_EPOCH - 86400),
            "GmtModifiedTime": iso_z(GEN_EPOCH - 86400), "code_sources": sources}


def gen_pai(n, rng, git_base):
    """Workspace 1001 with n code sources, 1002 with a few (two of them share a name and a
    creation time, with all-digit ids 9 and 10: numeric order differs from byte order)."""
    def pai_id(i):
        return f"code-1001-{i:06d}"

    awkward = awkward_names(pai_id)
    sources = []
    for i in range(n):
        created = GEN_EPOCH + i * 60 - (60 if i % 10 == 9 else 0)  # every 10th ties
        branch = "" if i % 5 == 4 else rng.choice(["main", "master", "dev"])
        token = f"tok-1001-{i}-secret" if i % 7 == 0 else ""
        sources.append(pai_source("1001", pai_id(i), gen_name(rng, i, awkward), created,
                                  f"{git_base}/pai/pai-1001-{i}.git", branch, token))
    small = []
    for k, (ident, name) in enumerate([("9", "same"), ("10", "same"), ("11", "other-a"),
                                       ("12", "other/b"), ("13", "other-c")][:min(n, 5)]):
        created = GEN_EPOCH + 60 * max(k, 1)  # ids 9 and 10 tie
        url = f"{git_base}/pai/pai-1002-{ident}.git"
        small.append(pai_source("1002", ident, name, created, url, "main",
                                "tok-1002-secret" if k == 2 else ""))
    return {"workspaces": [pai_workspace("1001", "ws1001", sources),
                           pai_workspace("1002", "ws1002", small)]}


def gen_volc(n, rng, git_base):
    def volc_id(i):
        return f"{i:08x}" + hashlib.md5(str(i).encode()).hexdigest()[:24]

    awkward = awkward_names(volc_id)
    resources = []
    for i in range(n):
        git = {"Url": f"{git_base}/volc/volc-{i}.git", "UserName": "u" if i % 4 == 0 else "",
               "UserToken": f"volc-token-{i}-secret" if i % 4 == 0 else "",
               "Password": "", "AccessKey": "", "SecretKey": "", "CloneDepth": i % 3}
        if i % 6 == 1:
            git.update(Password=f"volc-pass-{i}-secret", AccessKey=f"volc-ak-{i}-secret",
                       SecretKey=f"volc-sk-{i}-secret")
        created = GEN_EPOCH + i * 60 - (60 if i % 10 == 9 else 0)
        resources.append({
            "Id": volc_id(i), "WorkspaceId": "ws-0001", "Name": gen_name(rng, i, awkward),
            "Description": "", "Type": rng.choice(["GitHub", "GitLab", "Gitee", "Git", "Codeup"]),
            "Configuration": {"Git": git}, "CreateTime": iso_cn(created),
            "UpdateTime": iso_cn(created + 60), "Creator": {"AccountId": 2450649900, "UserId": 0}})
    return {"workspaces": [{"Id": "ws-0001", "Name": "demo", "Description": "",
                            "CreateTime": iso_cn(GEN_EPOCH), "UpdateTime": iso_cn(GEN_EPOCH),
                            "Creator": {"AccountId": 2450649900, "UserId": 0},
                            "Visibility": "Private", "VisibleUsers": [],
                            "resources": resources}]}


CODEUP_ROOT_NS = 1  # namespaceId of repositories directly in the organization


def codeup_group(gid, org, path, parent_full, parent_id):
    full = f"{parent_full}/{path}"
    return {"id": gid, "name": path.capitalize(), "path": path, "fullPath": full,
            "kind": "group", "nameWithNamespace": full, "pathWithNamespace": full,
            "parentId": parent_id, "visibility": "private",
            "webUrl": f"https://codeup.example/{full}", "avatarUrl": ""}


def gen_codeup_groups(org):
    """3 top groups, 2 sub-groups each, one 'deep' group under each sub-group."""
    groups = []
    for top in ("platform", "ml", "web"):
        groups.append(codeup_group(1001 + len(groups), org, top, org, CODEUP_ROOT_NS))
        t = groups[-1]
        for sub in ("core", "tools"):
            groups.append(codeup_group(1001 + len(groups), org, sub, t["fullPath"], t["id"]))
            s = groups[-1]
            groups.append(codeup_group(1001 + len(groups), org, "deep", s["fullPath"], s["id"]))
    return groups


def gen_codeup(n, rng, git_base):
    """Organization org-1: groups three levels deep, n repositories spread over the groups
    and the organization itself; every 9th archived; every 11th called 'url' (like a
    file of the tree); a few share a path within their group after case folding."""
    org = "org-1"
    groups = gen_codeup_groups(org)
    homes = [(CODEUP_ROOT_NS, org)] + [(g["id"], g["fullPath"]) for g in groups]
    repos = []
    for i in range(n):
        ns_id, ns_full = homes[i % len(homes)]
        path = "url" if i % 11 == 0 else f"{rng.choice(WORDS)}-{i}"
        full = f"{ns_full}/{path}"
        created = GEN_EPOCH + i * 60
        repos.append({
            "id": 5000 + i, "name": path, "path": path, "description": f"repository {i}",
            "pathWithNamespace": full, "nameWithNamespace": full, "namespaceId": ns_id,
            "visibility": "private", "webUrl": f"https://codeup.example/{full}",
            "httpUrlToRepo": f"{git_base}/codeup/codeup-{i}.git",
            "sshUrlToRepo": f"git@codeup.example:{full}.git",
            "defaultBranch": rng.choice(["master", "main", "develop"]),
            "createdAt": iso_cn(created, True), "updatedAt": iso_cn(created + 99, True),
            "lastActivityAt": iso_cn(created + 99, True), "archived": i % 9 == 8})
    return {"organizations": [codeup_org(org, "demo-org", groups, repos)]}


NEST_BASE = 9_000_000  # ids of hostile_nest_groups' groups: nest-k is NEST_BASE + k


def nest_group(org, parent):
    """hostile_nest_groups: the one sub-group of group `parent` ("": the organization), a
    group no one has seen at every level, so the chain never ends and never loops."""
    k = int(parent) - NEST_BASE + 1 if parent.isdigit() and int(parent) > NEST_BASE else 1
    full = "/".join([org] + [f"nest-{i}" for i in range(1, k)])
    return codeup_group(NEST_BASE + k, org, f"nest-{k}", full,
                        int(parent) if k > 1 else CODEUP_ROOT_NS)


ORG_FIELDS = ("id", "name", "description", "creatorId", "defaultRole", "createdAt",
              "updateAt")


def codeup_org(org, name, groups, repos):
    """An organization as ListOrganizations shows it, with its groups and repositories."""
    return {"id": org, "name": name, "description": f"organization {org}",
            "creatorId": "u-1001", "defaultRole": "member",
            "createdAt": iso_cn(GEN_EPOCH - 86400, True),
            "updateAt": iso_cn(GEN_EPOCH - 86400, True),
            "namespaces": groups, "repositories": repos}


def epoch_of(text):
    """Seconds of an ISO time with Z or an offset; 0 (oldest) when absent or unreadable."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def id_key(ident):
    """docs/design.md §1: ids compare as numbers when all digits, otherwise byte by byte."""
    s = str(ident)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


def normalize(data):
    """Fill what a hand-written data file leaves out, as the real API always sends it:
    every PAI item field (strings), a WorkspaceId on items; Volcengine items in creation
    order (ListResources has no sort parameter)."""
    for ws in data.get("pai", {}).get("workspaces", []):
        ws["WorkspaceId"] = str(ws.get("WorkspaceId", ""))
        for cs in ws.setdefault("code_sources", []):
            cs.setdefault("WorkspaceId", ws["WorkspaceId"])
            for f in PAI_FIELDS:
                cs[f] = "" if cs.get(f) is None else str(cs[f])
    for ws in data.get("volc", {}).get("workspaces", []):
        res = ws.setdefault("resources", [])
        for r in res:
            r.setdefault("WorkspaceId", ws.get("Id"))
        res.sort(key=lambda r: epoch_of(r.get("CreateTime")))  # stable: file order on ties
    for org in data.get("codeup", {}).get("organizations", []):
        org.setdefault("namespaces", [])
        org.setdefault("repositories", [])
    return data


# ============================================================================ state

DEFAULT_KNOBS = {"latency_ms": 0, "fail_5xx": 0.0, "throttle": 0.0, "retry_after": 1,
                 "reset": 0.0, "truncate": 0.0, "malformed": 0.0, "stall": 0.0, "stall_s": 30,
                 "stall_page": 0,
                 "down": False, "max_page_size": 100, "codeup_headers": True,
                 "codeup_list_full": True, "mutate": None, "error_message": None,
                 "hostile_total": None, "hostile_records_per_page": 0,
                 "hostile_empty_pages": False, "hostile_repeat_pages": False,
                 "hostile_pad_bytes": 0, "hostile_nest_groups": False}
FAULT_KNOBS = ("fail_5xx", "throttle", "reset", "truncate", "malformed", "stall")
COUNT_KNOBS = ("hostile_records_per_page", "hostile_pad_bytes")


def check_knobs(new):
    """Validated copy of a knob update, or raise ValueError naming the bad knob."""
    out = {}
    for k, v in new.items():
        if k not in DEFAULT_KNOBS:
            raise ValueError(f"unknown knob {k}")
        if k in FAULT_KNOBS:
            v = float(v)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{k} is a fraction from 0 to 1")
        elif k in ("latency_ms", "stall_s", "retry_after"):
            v = float(v) if k != "retry_after" else int(v)
            if v < 0:
                raise ValueError(f"{k} must not be negative")
        elif k == "max_page_size":
            v = int(v)
            if v < 1:
                raise ValueError("max_page_size must be 1 or more")
        elif k == "stall_page":
            v = int(v)
            if v < 0:
                raise ValueError("stall_page must not be negative")
        elif k == "mutate":
            if v is not None and not isinstance(v, dict):
                raise ValueError("mutate is an object or null")
        elif k == "error_message":
            if v is not None and not isinstance(v, str):
                raise ValueError("error_message is a string or null")
        elif k == "hostile_total":
            if v is not None and (isinstance(v, bool) or int(v) < 0):
                raise ValueError("hostile_total is a count or null")
            v = None if v is None else int(v)
        elif k in COUNT_KNOBS:
            v = int(v)
            if v < 0:
                raise ValueError(f"{k} must not be negative")
        elif not isinstance(v, bool):
            raise ValueError(f"{k} is true or false")
        out[k] = v
    return out


class Store:
    """The data set, its sort indexes, the knobs, the counters and the fault dice.
    One lock guards all of it; handlers hold it only to compute an answer, never while
    sleeping or writing to a socket."""

    def __init__(self, data, seed, keys):
        self.lock = threading.RLock()
        self.unstalled = threading.Condition(self.lock)  # stall set back to 0
        self.data = normalize(data)
        self.version = 0               # bumped by every change of the data
        self.sorted_cache = {}         # (version, workspace, sort key, desc) → [item]
        self.page_cache = {}           # (version, …what decides the page) → RawJSON
        self.page_cache_bytes = 0
        self.knobs = dict(DEFAULT_KNOBS)
        self.rng = random.Random(seed)
        self.stats = Counter()
        self.in_flight = 0             # cloud requests being answered now
        self.list_requests = Counter()  # per provider, for the mutation trigger
        self.nonces = NonceCache()
        self.keys = keys

    # --- counters and dice

    def count(self, key, n=1):
        """total counts requests: faults, mutations and connections are not ones."""
        with self.lock:
            self.stats[key] += n
            if not key.startswith(("fault.", "conn.")) and key != "mutations":
                self.stats["total"] += n

    def enter(self):
        """A cloud request begins: in_flight.max is the most answered at once."""
        with self.lock:
            self.in_flight += 1
            if self.in_flight > self.stats["in_flight.max"]:
                self.stats["in_flight.max"] = self.in_flight

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def roll(self, knob):
        """True with the knob's probability; one seeded generator, so a sequence of
        requests meets the same faults on every run with the same --seed."""
        with self.lock:
            p = float(self.knobs.get(knob) or 0.0)
            return p > 0 and self.rng.random() < p

    def stall_wait(self, seconds, knob="stall"):
        """Sleep up to seconds, or until the knob is set back to 0: a test that un-stalls
        the emulator gets the answers of the requests already held."""
        deadline = time.monotonic() + seconds
        with self.unstalled:
            while self.knobs[knob] and time.monotonic() < deadline:
                self.unstalled.wait(deadline - time.monotonic())

    def snapshot_knobs(self):
        with self.lock:
            return dict(self.knobs)

    def configure(self, new):
        with self.lock:
            self.knobs.update(check_knobs(new))
            if not self.knobs["stall"] or not self.knobs["stall_page"]:
                self.unstalled.notify_all()
            if "mutate" in new:
                self.list_requests.clear()
                m = self.knobs["mutate"]
                if m and int(m.get("after_requests", 1)) <= 0:
                    self.apply_mutation()
            return dict(self.knobs)

    # --- PAI indexes

    def pai_workspaces(self):
        return self.data.get("pai", {}).get("workspaces", [])

    def pai_sorted(self, ws_id, sort_by, desc):
        """Code sources of one workspace (None: all) in the asked order, cached until
        the data changes: 100,000 entries are sorted once, then paged by slicing."""
        key = (self.version, ws_id, sort_by, desc)
        hit = self.sorted_cache.get(key)
        if hit is None:
            items = [cs for ws in self.pai_workspaces()
                     if ws_id is None or ws["WorkspaceId"] == ws_id
                     for cs in ws["code_sources"]]
            hit = sorted(items, key=lambda c: (c.get(sort_by, ""), id_key(c["CodeSourceId"])),
                         reverse=desc)
            self.sorted_cache = {k: v for k, v in self.sorted_cache.items()
                                 if k[0] == self.version}
            self.sorted_cache[key] = hit
        return hit

    def page_json(self, key, items):
        """The entries of one page as encoded JSON, encoded once per version of the data:
        a listing of 10,000 entries asked again (a benchmark, a second mount) costs a
        slice, not 100 encodings. key: everything besides the data that decides which
        entries items() gives. Called with the lock held."""
        key = (self.version,) + key
        hit = self.page_cache.get(key)
        if hit is None:
            if self.page_cache_bytes > PAGE_CACHE_BYTES or \
                    any(k[0] != self.version for k in self.page_cache):
                self.page_cache, self.page_cache_bytes = {}, 0
            hit = RawJSON(json.dumps(items(), ensure_ascii=False).encode("utf-8",
                                                                         "surrogatepass"))
            self.page_cache[key] = hit
            self.page_cache_bytes += len(hit.data)
        return hit

    # --- mutation while paging

    def after_list(self, provider):
        """Called once a list request was answered: applies a pending mutation when
        after_requests list requests of its provider have been served."""
        with self.lock:
            self.list_requests[provider] += 1
            m = self.knobs.get("mutate")
            if m and not m.get("done") and m.get("provider", "pai") == provider \
                    and self.list_requests[provider] >= int(m.get("after_requests", 1)):
                self.apply_mutation()

    def apply_mutation(self):
        m = self.knobs["mutate"]
        m["done"] = True
        provider, add, remove = m.get("provider", "pai"), int(m.get("add", 0)), \
            int(m.get("remove", 0))
        target = {"pai": self.mutate_pai, "volc": self.mutate_volc,
                  "codeup": self.mutate_codeup}.get(provider)
        if target:
            target(m.get("workspace"), add, remove)
            if int(m.get("change", 0)):
                self.change_urls(provider, m.get("workspace"), int(m["change"]))
            self.version += 1
            self.stats["mutations"] += 1

    RENAMED = {"pai": ("WorkspaceId", ("WorkspaceName", "DisplayName")),
               "volc": ("Id", ("Name",)), "codeup": ("id", ("name",))}

    def rename(self, provider, ident, name):
        """A workspace's or organization's display name changes, as in the console."""
        if provider not in self.RENAMED or not isinstance(name, str):
            raise ValueError("rename takes provider pai, volc or codeup, an id and a name")
        key, fields = self.RENAMED[provider]
        with self.lock:
            part = self.data.get(provider, {})
            items = part.get("organizations" if provider == "codeup" else "workspaces", [])
            it = next((i for i in items if str(i.get(key)) == str(ident)), None)
            if it is None:
                raise ValueError(f"no {provider} workspace or organization {ident}")
            for f in fields:
                it[f] = name
            self.version += 1
            self.stats["mutations"] += 1
            return {k: v for k, v in it.items()
                    if k not in ("code_sources", "resources", "namespaces", "repositories")}

    def pick(self, items, key, ident):
        for it in items:
            if ident is None or str(it[key]) == str(ident):
                return it
        return None

    def mutate_pai(self, ws_id, add, remove):
        """Remove the oldest entries (shifting every later offset page) and add newer
        ones than any existing, so they land on the last page in creation order."""
        ws = self.pick(self.pai_workspaces(), "WorkspaceId", ws_id)
        if not ws:
            return
        order = sorted(ws["code_sources"], key=lambda c: (c["GmtCreateTime"],
                                                         id_key(c["CodeSourceId"])))
        gone = {c["CodeSourceId"] for c in order[:remove]}
        ws["code_sources"] = [c for c in ws["code_sources"] if c["CodeSourceId"] not in gone]
        newest = max([epoch_of(c["GmtCreateTime"]) for c in order] + [GEN_EPOCH])
        for k in range(add):
            ident = f"code-new-{self.version + 1}-{k}"
            ws["code_sources"].append(pai_source(
                ws["WorkspaceId"], ident, f"new-{self.version + 1}-{k}", newest + 60 * (k + 1),
                f"https://git.example.com/{ident}.git", "main", ""))

    def change_urls(self, provider, ws_id, n):
        """The clone URL of the n oldest entries (after the removals) moves elsewhere."""
        if provider == "pai":
            ws = self.pick(self.pai_workspaces(), "WorkspaceId", ws_id)
            items = sorted(ws["code_sources"] if ws else [],
                           key=lambda c: (c["GmtCreateTime"], id_key(c["CodeSourceId"])))
            for c in items[:n]:
                c["CodeRepo"] = f"https://git.example.com/moved-{self.version + 1}/" \
                    f"{c['CodeSourceId']}.git"
        elif provider == "volc":
            ws = self.pick(self.data.get("volc", {}).get("workspaces", []), "Id", ws_id)
            for r in (ws["resources"] if ws else [])[:n]:
                r["Configuration"]["Git"]["Url"] = \
                    f"https://git.example.com/moved-{self.version + 1}/{r['Id']}.git"

    def mutate_volc(self, ws_id, add, remove):
        ws = self.pick(self.data.get("volc", {}).get("workspaces", []), "Id", ws_id)
        if not ws:
            return
        del ws["resources"][:remove]
        newest = max([epoch_of(r.get("CreateTime")) for r in ws["resources"]] + [GEN_EPOCH])
        for k in range(add):
            t = newest + 60 * (k + 1)
            ws["resources"].append({
                "Id": f"new{self.version + 1:08d}{k:021d}", "WorkspaceId": ws["Id"],
                "Name": f"new-{self.version + 1}-{k}", "Description": "", "Type": "Git",
                "Configuration": {"Git": {"Url": f"https://git.example.com/volc-new-{k}.git",
                                          "UserName": "", "UserToken": "", "Password": "",
                                          "AccessKey": "", "SecretKey": "", "CloneDepth": 0}},
                "CreateTime": iso_cn(t), "UpdateTime": iso_cn(t),
                "Creator": {"AccountId": 2450649900, "UserId": 0}})

    def mutate_codeup(self, org_id, add, remove):
        org = self.pick(self.data.get("codeup", {}).get("organizations", []), "id", org_id)
        if not org:
            return
        repos = sorted(org["repositories"], key=lambda r: (epoch_of(r.get("createdAt")),
                                                          id_key(r["id"])))
        gone = {r["id"] for r in repos[:remove]}
        org["repositories"] = [r for r in org["repositories"] if r["id"] not in gone]
        newest = max([epoch_of(r.get("createdAt")) for r in repos] + [GEN_EPOCH])
        top = max([int(r["id"]) for r in repos if str(r["id"]).isdigit()] + [90000])
        for k in range(add):
            path, t = f"new-{self.version + 1}-{k}", newest + 60 * (k + 1)
            full = f"{org['id']}/{path}"
            org["repositories"].append({
                "id": top + k + 1, "name": path, "path": path, "description": "",
                "pathWithNamespace": full, "nameWithNamespace": full,
                "namespaceId": CODEUP_ROOT_NS, "visibility": "private",
                "webUrl": f"https://codeup.example/{full}",
                "httpUrlToRepo": f"https://git.example.com/codeup/{full}.git",
                "defaultBranch": "main", "createdAt": iso_cn(t, True),
                "updatedAt": iso_cn(t, True), "lastActivityAt": iso_cn(t, True),
                "archived": False})


def page_of(items, page, size):
    return items[(page - 1) * size: page * size]


class RawJSON:
    """JSON already encoded (UTF-8 bytes) that an answer holds where it stands, as if its
    value were there: the cached entries of a page (Store.page_json)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


# Stands for a RawJSON while the rest of an answer is encoded; a NUL and a per-run token
# make it a string no data set holds.
RAW_MARK = f"\0raw-{uuid.uuid4().hex}-%d\0"


def encode_answer(obj):
    """obj as the UTF-8 JSON an answer carries, each RawJSON in it spliced in as it is."""
    raws = []

    def stand_in(o):
        if not isinstance(o, RawJSON):
            raise TypeError(f"{type(o).__name__} is not JSON")
        raws.append(o.data)
        return RAW_MARK % (len(raws) - 1)

    data = json.dumps(obj, ensure_ascii=False, default=stand_in).encode("utf-8", "surrogatepass")
    for i, raw in enumerate(raws):
        data = data.replace(json.dumps(RAW_MARK % i).encode(), raw, 1)
    return data


def int_param(value, default, low=None):
    """An integer query parameter: default when absent, ApiError-free None when bad."""
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return None if low is not None and n < low else n


# ============================================================================ PAI


def hostile_source(ident):
    """The cheapest code source a listing can hold: id, name and clone URL."""
    return {"CodeSourceId": ident, "DisplayName": ident,
            "CodeRepo": f"https://git.example.com/{ident}.git"}


def hostile_answer(knobs, page, page_items, total):
    """A ListCodeSources answer, bent by the hostile_* knobs: a total of its own, pages of
    fresh entries of any size, empty or repeated pages after the first, padding."""
    shown = 1 if knobs["hostile_repeat_pages"] else page
    n = knobs["hostile_records_per_page"]
    if knobs["hostile_empty_pages"] and page > 1:
        items = []
    elif n:
        items = [hostile_source(f"h{shown}-{i}") for i in range(n)]
    else:
        items = page_items(shown)
    body = {"CodeSources": items,
            "TotalCount": total if knobs["hostile_total"] is None else knobs["hostile_total"]}
    if knobs["hostile_pad_bytes"]:
        body["Padding"] = "x" * knobs["hostile_pad_bytes"]
    return body


class Pai:
    """AIWorkSpace 2021-02-04 (ROA): the path names the API, x-acs-action must agree."""
    name = "pai"
    ROUTES = (("GET", "/api/v1/workspaces", "ListWorkspaces"),
              ("GET", "/api/v1/codesources", "ListCodeSources"),
              ("GET", "/api/v1/codesources/*", "GetCodeSource"))

    def __init__(self, store, sts_token):
        self.store, self.sts_token = store, sts_token

    def action_of(self, req):
        return req.headers.get("x-acs-action") or "Unknown"

    def route(self, req):
        for method, pattern, action in self.ROUTES:
            if pattern.endswith("/*"):
                base = pattern[:-1]
                hit = req.path.startswith(base) and "/" not in req.path[len(base):] \
                    and len(req.path) > len(base)
            else:
                hit = req.path == pattern
            if hit and req.method == method and req.headers.get("x-acs-action") == action:
                return action
        return None

    def authenticate(self, req):
        action = self.route(req)
        if action is None:
            raise ApiError(404, "InvalidApi.NotFound", "Specified api is not found, please "
                           "check your url and method.")
        if req.headers.get("x-acs-version") != PAI_VERSION:
            raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
        with self.store.lock:
            verify_acs3(req.method, req.path, req.query, req.headers, req.body,
                        self.store.keys["pai"], self.sts_token, self.store.nonces, time.time())

    def serve(self, req, knobs):
        q = dict(split_query(req.query))
        action = self.route(req)
        if action == "ListWorkspaces":
            return 200, self.list_workspaces(q, knobs), {}
        if action == "ListCodeSources":
            body = self.list_code_sources(q, knobs)
            self.store.after_list("pai")
            return 200, body, {}
        return 200, self.get_code_source(urllib.parse.unquote(req.path.rsplit("/", 1)[1])), {}

    def paging(self, q, knobs):
        page = int_param(q.get("PageNumber"), 1, low=1)
        size = int_param(q.get("PageSize"), 20, low=1)
        if page is None or size is None:
            raise ApiError(400, "InvalidParameter", "PageNumber and PageSize are integers "
                           "of 1 or more.")
        return page, min(size, int(knobs["max_page_size"]))  # the server caps, silently

    def list_workspaces(self, q, knobs):
        page, size = self.paging(q, knobs)
        wss = self.store.pai_workspaces()
        if q.get("WorkspaceIds"):
            ids = {i.strip() for i in q["WorkspaceIds"].split(",")}
            wss = [w for w in wss if w["WorkspaceId"] in ids]
        if q.get("WorkspaceName"):
            needle = q["WorkspaceName"].lower()
            wss = [w for w in wss if needle in str(w.get("WorkspaceName", "")).lower()]
        if q.get("Status"):
            wss = [w for w in wss if w.get("Status", "ENABLED") == q["Status"]]
        items = [{k: v for k, v in w.items() if k != "code_sources"}
                 for w in page_of(wss, page, size)]
        return {"Workspaces": items, "TotalCount": len(wss)}

    SORT_KEYS = ("GmtCreateTime", "GmtModifyTime", "DisplayName", "CodeSourceId")

    def list_code_sources(self, q, knobs):
        page, size = self.paging(q, knobs)
        sort_by = q.get("SortBy") or "GmtCreateTime"
        order = (q.get("Order") or "ASC").upper()
        if sort_by not in self.SORT_KEYS or order not in ("ASC", "DESC"):
            raise ApiError(400, "InvalidParameter", "SortBy or Order is not valid.")
        items = self.store.pai_sorted(q.get("WorkspaceId") or None, sort_by, order == "DESC")
        if q.get("DisplayName"):  # fuzzy: a case-insensitive substring
            needle = q["DisplayName"].lower()
            items = [c for c in items if needle in c["DisplayName"].lower()]
        # Everything that decides a page's entries, besides the data (the cache's version).
        key = ("pai", q.get("WorkspaceId") or None, sort_by, order, q.get("DisplayName"), size)
        return hostile_answer(
            knobs, page,
            lambda p: self.store.page_json(key + (p,), lambda: page_of(items, p, size)),
            len(items))

    def get_code_source(self, ident):
        for ws in self.store.pai_workspaces():
            for cs in ws["code_sources"]:
                if cs["CodeSourceId"] == ident:
                    return dict(cs)
        raise ApiError(404, "CodeSourceNotFound", f"Code source {ident} does not exist.")

    def answer_ok(self, body, action, rid):
        body["RequestId"] = rid
        return body, {"x-acs-request-id": rid}

    def answer_error(self, e, action, req, rid):
        body = {"RequestId": rid, "HostId": req.headers.get("host", "aiworkspace.local"),
                "Code": e.code, "Message": e.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={e.code}"
                             f"&product=AIWorkSpace&requestId={rid}"}
        return body, {"x-acs-request-id": rid}

    def throttled(self):
        return ApiError(400, "Throttling.User", "Request was denied due to user flow control.")

    def unavailable(self):
        return ApiError(503, "ServiceUnavailable",
                        "The request has failed due to a temporary failure of the server.")

    def new_request_id(self):
        return str(uuid.uuid4()).upper()


# ============================================================================ Volcengine


class Volc:
    """cp 2023-05-01: POST /?Action=…&Version=… with a JSON body."""
    name = "volc"
    ACTIONS = ("ListResources", "ListWorkspaces")

    def __init__(self, store, sts_token, region="cn-beijing"):
        self.store, self.sts_token, self.region = store, sts_token, region

    def action_of(self, req):
        return dict(split_query(req.query)).get("Action") or "Unknown"

    def authenticate(self, req):
        q = dict(split_query(req.query))
        if q.get("Action") not in self.ACTIONS or q.get("Version") != VOLC_VERSION \
                or req.method != "POST":
            raise ApiError(404, "InvalidActionOrVersion",
                           f"Could not find operation {q.get('Action')} for version "
                           f"{q.get('Version')}", 100008)
        verify_volc(req.method, req.path, req.query, req.headers, req.body,
                    self.store.keys["volc"], self.sts_token, time.time())

    def serve(self, req, knobs):
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidParameter", "The request body is not a JSON object.",
                           100004)
        page, size = body.get("PageNumber", 1), body.get("PageSize", 10)
        if type(size) is not int or not 1 <= size <= 100:
            raise ApiError(400, "InvalidParameter",
                           "The parameter PageSize must be between 1 and 100.", 100004)
        if type(page) is not int or page < 1:
            raise ApiError(400, "InvalidParameter", "The parameter PageNumber must be 1 or "
                           "more.", 100004)
        flt = body.get("Filter") if isinstance(body.get("Filter"), dict) else {}
        if self.action_of(req) == "ListWorkspaces":
            items = self.filtered(self.workspaces(), flt)
            items = [{k: v for k, v in w.items() if k != "resources"} for w in items]
        else:
            items = self.filtered(self.resources(body.get("WorkspaceId")), flt)
            self.store.after_list("volc")
        return 200, {"Items": [dict(i) for i in page_of(items, page, size)],
                     "PageNumber": page, "PageSize": size, "TotalCount": len(items)}, {}

    def workspaces(self):
        return self.store.data.get("volc", {}).get("workspaces", [])

    def resources(self, ws_id):
        if not ws_id:
            raise ApiError(400, "MissingParameter", "The parameter WorkspaceId is required.",
                           100002)
        for ws in self.workspaces():
            if ws.get("Id") == ws_id:
                return ws["resources"]  # kept in creation order
        raise ApiError(403, "AccessDenied", f"You are not allowed to access workspace "
                       f"{ws_id}.", 100013)

    def filtered(self, items, flt):
        if flt.get("Name"):  # fuzzy: a case-insensitive substring
            needle = str(flt["Name"]).lower()
            items = [i for i in items if needle in str(i.get("Name", "")).lower()]
        if isinstance(flt.get("Ids"), list) and flt["Ids"]:
            ids = set(map(str, flt["Ids"]))
            items = [i for i in items if str(i.get("Id")) in ids]
        if isinstance(flt.get("Types"), list) and flt["Types"]:
            items = [i for i in items if i.get("Type") in flt["Types"]]
        return items

    def metadata(self, action, rid):
        return {"RequestId": rid, "Action": action, "Version": VOLC_VERSION, "Service": "cp",
                "Region": self.region}

    def answer_ok(self, body, action, rid):
        return {"ResponseMetadata": self.metadata(action, rid), "Result": body}, {}

    def answer_error(self, e, action, req, rid):
        err = {"Code": e.code, "Message": e.message}
        if e.code_n:
            err["CodeN"] = e.code_n
        meta = dict(self.metadata(action, rid), Error=err)
        return {"ResponseMetadata": meta}, {}

    def throttled(self):
        return ApiError(429, "FlowLimitExceeded", "Your request has exceeded the flow limit.",
                        100018)

    def unavailable(self):
        return ApiError(500, "InternalError", "The request processing has failed due to some "
                        "unknown error.", 100014)

    def new_request_id(self):
        return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + uuid.uuid4().hex[:20].upper()


# ============================================================================ Codeup


class Codeup:
    """Yunxiao OpenAPI: x-yunxiao-token, bare arrays, paging in x-* headers."""
    name = "codeup"
    ORG_PREFIX = "/oapi/v1/codeup/organizations/"

    def __init__(self, store, token):
        self.store, self.token = store, token

    def parse(self, path):
        """(action, organization id, repository ident or None)."""
        if path == "/oapi/v1/platform/user":
            return "GetCurrentUser", None, None
        if path == "/oapi/v1/platform/organizations":
            return "ListOrganizations", None, None
        if not path.startswith(self.ORG_PREFIX):
            return "Unknown", None, None
        org, _, rest = path[len(self.ORG_PREFIX):].partition("/")
        org = urllib.parse.unquote(org)
        if rest == "namespaces":
            return "ListNamespaces", org, None
        if rest == "repositories":
            return "ListRepositories", org, None
        if rest.startswith("repositories/") and len(rest) > len("repositories/"):
            return "GetRepository", org, urllib.parse.unquote(rest[len("repositories/"):])
        return "Unknown", org, None

    def action_of(self, req):
        return self.parse(req.path)[0]

    def authenticate(self, req):
        token = req.headers.get("x-yunxiao-token")
        if not token or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise ApiError(401, "InvalidTokenError", "The personal access token is invalid.")

    def serve(self, req, knobs):
        action, org_id, ident = self.parse(req.path)
        if action == "Unknown" or req.method != "GET":
            raise ApiError(404, "NotFound", f"No API at {req.method} {req.path}.")
        if action == "GetCurrentUser":
            return 200, {"id": "u-1001", "name": "Tester", "username": "tester",
                         "email": "tester@example.com", "lastOrganization": "org-1"}, {}
        if action == "ListOrganizations":
            return self.list_organizations(dict(split_query(req.query)), knobs)
        org = self.organization(org_id)
        q = dict(split_query(req.query))
        if action == "GetRepository":
            return 200, self.get_repository(org, ident), {}
        if action == "ListNamespaces" and knobs["hostile_nest_groups"]:
            nest = nest_group(org["id"], q.get("parentId", ""))
            items = self.namespaces({"namespaces": [nest]}, q)
        elif action == "ListNamespaces":
            items = self.namespaces(org, q)
        else:
            items = self.repositories(org, q)
        page, size = self.paging(q)
        body = [dict(i) for i in page_of(items, page, size)]
        if action == "ListRepositories" and knobs["hostile_records_per_page"]:
            return 200, self.hostile_repositories(org, page, knobs), {"x-next-page": str(page + 1)}
        if action == "ListRepositories":
            if not knobs["codeup_list_full"]:  # the list lacks what GetRepository has
                for r in body:
                    for k in ("httpUrlToRepo", "sshUrlToRepo", "defaultBranch"):
                        r.pop(k, None)
            self.store.after_list("codeup")
        headers = self.paging_headers(len(items), page, size) if knobs["codeup_headers"] else {}
        return 200, body, headers

    def list_organizations(self, q, knobs):
        """The organizations the token's user joined: every one of the data set, in its
        order, with the fields ListOrganizations shows (perPage defaults to 100)."""
        page, size = int_param(q.get("page"), 1, low=1), int_param(q.get("perPage"), 100, low=1)
        if page is None or size is None or size > 100:
            raise ApiError(400, "BadRequest", "page must be 1 or more, perPage 1 to 100.")
        orgs = self.store.data.get("codeup", {}).get("organizations", [])
        body = [{k: org.get(k, "") for k in ORG_FIELDS} for org in page_of(orgs, page, size)]
        headers = self.paging_headers(len(orgs), page, size) if knobs["codeup_headers"] else {}
        return 200, body, headers

    @staticmethod
    def hostile_repositories(org, page, knobs):
        """hostile_records_per_page fresh repositories in the organization, and a next
        page, always."""
        n = knobs["hostile_records_per_page"]
        return [{"id": page * n + i, "path": f"h{page}-{i}", "namespaceId": CODEUP_ROOT_NS,
                 "pathWithNamespace": f"{org['id']}/h{page}-{i}"} for i in range(n)]

    def organization(self, org_id):
        for org in self.store.data.get("codeup", {}).get("organizations", []):
            if str(org.get("id")) == org_id:
                return org
        raise ApiError(403, "Forbidden.InvalidUser.UserNotInCurrentOrganization",
                       "The user is not a member of the organization.")

    def paging(self, q):
        page, size = int_param(q.get("page"), 1, low=1), int_param(q.get("perPage"), 20, low=1)
        if page is None or size is None or size > 100:
            raise ApiError(400, "BadRequest", "page must be 1 or more, perPage 1 to 100.")
        return page, size

    def ordered(self, items, q, default_by, keys):
        by, sort = q.get("orderBy") or default_by, q.get("sort") or "desc"
        if by not in keys or sort not in ("asc", "desc"):
            raise ApiError(400, "BadRequest", f"orderBy must be one of {', '.join(keys)}; "
                           "sort asc or desc.")
        field = keys[by]
        return sorted(items, key=lambda i: (epoch_of(i.get(field)) if field.endswith("At")
                                            else str(i.get(field, "")), id_key(i["id"])),
                      reverse=sort == "desc")

    def namespaces(self, org, q):
        groups = org["namespaces"]
        if q.get("parentId"):
            groups = [g for g in groups if str(g.get("parentId")) == q["parentId"]]
        else:  # top level: groups whose parent is not a group of the organization
            ids = {str(g["id"]) for g in groups}
            groups = [g for g in groups if str(g.get("parentId")) not in ids]
        if q.get("search"):
            s = q["search"].lower()
            groups = [g for g in groups if s in str(g.get("path", "")).lower()
                      or s in str(g.get("name", "")).lower()]
        return self.ordered(groups, q, "updated_at", {"created_at": "createdAt",
                                                      "updated_at": "updatedAt"})

    def repositories(self, org, q):
        repos = org["repositories"]
        if q.get("search"):
            s = q["search"].lower()
            repos = [r for r in repos if s in str(r.get("path", "")).lower()]
        if q.get("archived") in ("true", "false"):
            repos = [r for r in repos if bool(r.get("archived")) == (q["archived"] == "true")]
        return self.ordered(repos, q, "created_at", {
            "created_at": "createdAt", "name": "name", "path": "path",
            "last_activity_at": "lastActivityAt"})

    def get_repository(self, org, ident):
        for r in org["repositories"]:
            if str(r["id"]) == ident or r.get("pathWithNamespace") == ident:
                out = dict(r)
                out.setdefault("defaultBranch", "master")
                out.setdefault("httpUrlToRepo", str(r.get("webUrl", "")) + ".git")
                return out
        raise ApiError(404, "NotFound", f"Repository {ident} does not exist.")

    def paging_headers(self, total, page, size):
        pages = max(1, -(-total // size))
        return {"x-total": str(total), "x-total-pages": str(pages), "x-page": str(page),
                "x-per-page": str(size), "x-prev-page": str(page - 1) if page > 1 else "",
                "x-next-page": str(page + 1) if page < pages else ""}

    def answer_ok(self, body, action, rid):
        return body, {"x-request-id": rid}

    def answer_error(self, e, action, req, rid):
        return {"errorCode": e.code, "errorMessage": e.message}, {"x-request-id": rid}

    def throttled(self):
        return ApiError(429, "TooManyRequests", "Too many requests, please retry later.")

    def unavailable(self):
        return ApiError(500, "InternalServerError", "Internal server error.")

    def new_request_id(self):
        return str(uuid.uuid4()).upper()


# ============================================================================ /_tree/


def tree_names(sources):
    """{CodeSourceId: name} by the name rules codesrcfs follows (tests/names_rules.py)."""
    names = names_rules.assign([
        (cs["DisplayName"].encode("utf-8", "surrogatepass"), cs["CodeSourceId"],
         int(epoch_of(cs["GmtCreateTime"])) if cs["GmtCreateTime"] else 0)
        for cs in sources])
    return {ident: name.decode("utf-8", "surrogateescape") for ident, name in names.items()}


def redacted(item):
    out = {}
    for k, v in item.items():
        out[k] = "******" if k in SECRET_FIELDS and v else v
    return out


class Source:
    """A code source directory of /_tree/: its files are rendered when first asked for,
    so a 100,000-entry workspace costs only its names up front."""

    def __init__(self, cs):
        self.cs, self.files = cs, None

    def children(self):
        if self.files is None:
            cs = self.cs
            mtime = epoch_of(cs["GmtModifyTime"] or cs["GmtCreateTime"])
            meta = json.dumps(redacted(cs), indent=2, ensure_ascii=False) + "\n"
            files = {"meta.json": (meta.encode("utf-8", "surrogatepass"), mtime),
                     "url": ((cs["CodeRepo"] + "\n").encode(), mtime)}
            if cs["CodeBranch"]:
                files["branch"] = ((cs["CodeBranch"] + "\n").encode(), mtime)
            self.files = files
        return self.files


class Tree:
    """The PAI tree: a directory is a dict of name → node, a code source a Source, a file
    (bytes, mtime). Rebuilt when the data version changes."""

    def __init__(self, store):
        self.store, self.version, self.root = store, None, None

    def get(self):
        with self.store.lock:
            if self.version != self.store.version or self.root is None:
                self.root = self.build()
                self.version = self.store.version
            return self.root

    def build(self):
        pai = {}
        for ws in self.store.pai_workspaces():
            names = tree_names(ws["code_sources"])
            pai[ws["WorkspaceId"]] = {names[cs["CodeSourceId"]]: Source(cs)
                                      for cs in ws["code_sources"]}
        return {"pai": pai}

    def lookup(self, rel):
        """Node at a decoded path relative to /_tree/ (a Source as its dict), or None."""
        node = self.get()
        for part in [p for p in rel.split("/") if p]:
            if isinstance(node, Source):
                node = node.children()
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node.children() if isinstance(node, Source) else node


def index_page(title, node):
    """An Apache-style index: what httpdirfs and rclone's http backend parse."""
    rows = ['<tr><td><a href="../">Parent Directory</a></td><td>-</td></tr>']
    for name in sorted(node):
        is_dir = not isinstance(node[name], tuple)
        href = urllib.parse.quote(name.encode("utf-8", "surrogateescape")) + ("/" if is_dir else "")
        size = "-" if is_dir else str(len(node[name][0]))
        rows.append(f'<tr><td><a href="{href}">{html.escape(name)}{"/" if is_dir else ""}'
                    f'</a></td><td>{size}</td></tr>')
    t = html.escape(title)
    return (f"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html><head>"
            f"<title>Index of {t}</title></head><body><h1>Index of {t}</h1>\n<table>\n"
            + "\n".join(rows) + "\n</table></body></html>\n").encode("utf-8", "surrogateescape")


def parse_range(value, length):
    """(start, end) inclusive of a single 'bytes=' range, 'all' when absent or not
    understood (RFC 9110 lets a server ignore it), None when unsatisfiable."""
    if not value or not value.startswith("bytes=") or "," in value:
        return "all"
    first, _, last = value[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, length - n), length - 1) if n > 0 and length else None
        start = int(first)
        end = int(last) if last else length - 1
    except ValueError:
        return "all"
    if start >= length or end < start:
        return None
    return start, min(end, length - 1)


# ============================================================================ HTTP


def page_number(req):
    """The PageNumber a request's query string asks for (PAI), or None."""
    v = dict(split_query(req.query)).get("PageNumber", "")
    return int(v) if v.isdigit() else None


class Request:
    """What the verifiers and providers need of one request; headers lower-cased."""

    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = \
            method, path, query, headers, body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive; every answer has a Content-Length
    # Headers and body leave in two writes: with Nagle on, the body of every answer on a
    # kept-alive connection waits ~40 ms for the client's delayed ACK, a stall no real
    # cloud front end (nginx, Tengine: tcp_nodelay on) shows.
    disable_nagle_algorithm = True
    server_version = "cloud-emulator/2.0"
    timeout = SOCKET_TIMEOUT

    def setup(self):
        super().setup()
        self.counted = False   # this connection is in conn.accepted

    def count_connection(self):
        """A connection counts once it carries a request other than /_emu/ (the tests'
        own calls for stats would otherwise count themselves)."""
        if self.counted:
            return
        self.counted = True
        self.server.store.count("conn.accepted")
        if isinstance(self.connection, ssl.SSLSocket):
            self.server.store.count("conn.tls_handshakes")

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("emulator: %s %s\n" % (self.address_string(), fmt % args))

    # --- entry points: one for every method, so a strange one still gets a cloud answer

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def dispatch(self, method):
        self.arrived = time.monotonic()
        self.deadline = 0  # no latency but for the clouds and /_tree/
        try:
            body = self.read_body()
            if body is None:
                return
            self.route(method, body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
            self.close_connection = True
        except Exception as e:  # the emulator answers garbage; it never dies of it
            sys.stderr.write(f"emulator: internal error on {self.path!r}: {e!r}\n")
            self.close_connection = True
            try:
                self.send_bytes(500, b'{"message":"emulator internal error"}')
            except OSError:
                pass

    def read_body(self):
        """The request body, or None after answering a request whose body cannot be read
        safely (the connection is then closed, so no stray bytes start a next request)."""
        if self.headers.get("Transfer-Encoding"):
            self.refuse(411, "chunked bodies are not supported; send a Content-Length")
            return None
        raw = self.headers.get("Content-Length", "0")
        try:
            n = int(raw)
        except ValueError:
            n = -1
        if n < 0:
            self.refuse(400, "bad Content-Length")
            return None
        if n > MAX_BODY:
            self.refuse(413, "request body too large")
            return None
        body = self.rfile.read(n) if n else b""
        if len(body) != n:
            self.close_connection = True
            return None
        return body

    def refuse(self, status, message):
        self.close_connection = True
        self.send_bytes(status, json.dumps({"message": message}).encode())

    def send_bytes(self, status, body, headers=None, content_type="application/json;charset=utf-8"):
        """One complete answer; a HEAD request gets the headers only."""
        self.wait_latency()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drop(self):
        """Close the socket without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def route(self, method, body):
        u = urllib.parse.urlsplit(self.path)
        if u.path.startswith("/_emu/"):
            return self.control(method, u.path, body)
        self.count_connection()
        if u.path == "/_tree" or u.path.startswith("/_tree/"):
            return self.tree(method, u.path)
        providers = self.server.providers
        if u.path.startswith("/api/"):
            provider = providers["pai"]
        elif u.path.startswith("/oapi/"):
            provider = providers["codeup"]
        elif u.path == "/" and "Action=" in u.query:
            provider = providers["volc"]
        else:
            return self.send_bytes(404, b'{"message":"no such path"}')
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.store.enter()
        try:
            self.cloud(provider, Request(method, u.path, u.query, headers, body))
        finally:
            self.server.store.leave()

    # --- the clouds

    def cloud(self, provider, req):
        """Transport faults, authentication, answer faults, the answer, body faults: in
        the order a real client meets them."""
        store = self.server.store
        knobs = store.snapshot_knobs()
        if knobs["down"]:
            store.count("fault.down")
            return self.drop()
        action = provider.action_of(req)
        store.count(f"{provider.name}.{action}")
        # The answer leaves latency_ms after the request came, the emulator's own work
        # within it, as a server's answer time counts its work.
        self.deadline = self.arrived + float(knobs["latency_ms"]) / 1000
        if store.roll("reset"):
            self.wait_latency()
            store.count("fault.reset")
            return self.drop()
        stalled = time.monotonic()
        if store.roll("stall"):
            store.count("fault.stall")
            store.stall_wait(float(knobs["stall_s"]))
        if knobs["stall_page"] and page_number(req) == knobs["stall_page"]:
            store.count("fault.stall_page")
            store.stall_wait(float(knobs["stall_s"]), "stall_page")
        self.deadline += time.monotonic() - stalled  # a stall comes on top of the latency
        rid = provider.new_request_id()
        try:
            provider.authenticate(req)
            if store.roll("fail_5xx"):
                store.count("fault.5xx")
                raise provider.unavailable()
            if store.roll("throttle"):
                store.count("fault.throttle")
                e = provider.throttled()
                e.headers["Retry-After"] = str(knobs["retry_after"])
                raise e
            with store.lock:
                status, body, headers = provider.serve(req, knobs)
            body, extra = provider.answer_ok(body, action, rid)
        except ApiError as e:
            status = e.status
            if knobs["error_message"] is not None:  # what a server that echoes input says
                e.message = knobs["error_message"]
            body, extra = provider.answer_error(e, action, req, rid)
            headers = e.headers
        if self.server.verbose:
            sys.stderr.write(f"emulator: {provider.name}.{action} -> {status}\n")
        self.send_cloud(status, body, {**headers, **extra})

    def wait_latency(self):
        """Until the answer may leave: latency_ms after the request came."""
        left = self.deadline - time.monotonic()
        if left > 0:
            time.sleep(left)

    def send_cloud(self, status, obj, headers):
        store = self.server.store
        data = encode_answer(obj)
        if store.roll("truncate"):
            store.count("fault.truncate")
            self.wait_latency()
            self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.drop()
        if store.roll("malformed"):
            store.count("fault.malformed")
            status, data = 200, data[: max(1, len(data) // 2)] + b'\x00}]"'
        self.send_bytes(status, data, headers)

    # --- control

    def control(self, method, path, body):
        store = self.server.store
        if path == "/_emu/stats" and method == "GET":
            with store.lock:
                return self.send_json(200, dict(store.stats))
        if path == "/_emu/reset-stats" and method == "POST":
            with store.lock:
                store.stats.clear()
            return self.send_json(200, {})
        if path == "/_emu/data" and method == "GET":
            with store.lock:
                data = json.dumps(store.data, ensure_ascii=False).encode("utf-8", "surrogatepass")
            return self.send_bytes(200, data)
        if path == "/_emu/rename" and method == "POST":
            try:
                new = json.loads(body or b"{}")
                if not isinstance(new, dict):
                    raise ValueError("the body is a JSON object")
                return self.send_json(200, store.rename(new.get("provider"), new.get("id"),
                                                        new.get("name")))
            except (ValueError, TypeError) as e:
                return self.send_json(400, {"message": str(e)})
        if path == "/_emu/config" and method == "GET":
            return self.send_json(200, store.snapshot_knobs())
        if path == "/_emu/config" and method == "POST":
            try:
                new = json.loads(body or b"{}")
                if not isinstance(new, dict):
                    raise ValueError("the body is a JSON object of knobs")
                return self.send_json(200, store.configure(new))
            except (ValueError, TypeError) as e:
                return self.send_json(400, {"message": str(e)})
        return self.send_json(404, {"message": "no such control"})

    def send_json(self, status, obj):
        self.send_bytes(status, json.dumps(obj, ensure_ascii=False).encode())

    # --- /_tree/

    def tree(self, method, path):
        """The PAI tree as plain HTTP listings, for peers (httpdirfs, rclone) to mount.
        Latency applies, as for the APIs, so a benchmark compares like with like; the
        other faults do not."""
        latency = self.server.store.snapshot_knobs()["latency_ms"]
        self.deadline = self.arrived + float(latency) / 1000
        if method not in ("GET", "HEAD"):
            return self.send_bytes(405, b"", {"Allow": "GET, HEAD"}, "text/plain")
        rel = urllib.parse.unquote(path[len("/_tree"):], errors="surrogateescape")
        node = self.server.tree.lookup(rel)
        self.server.store.count("tree.File" if isinstance(node, tuple) else "tree.List")
        if node is None:
            return self.send_bytes(404, b"not found\n", content_type="text/plain")
        if isinstance(node, dict):
            if not path.endswith("/"):
                return self.send_bytes(301, b"", {"Location": path + "/"}, "text/plain")
            page = index_page(path, node)
            return self.send_bytes(200, page, content_type="text/html;charset=utf-8")
        self.send_file(node)

    def send_file(self, node):
        data, mtime = node
        headers = {"Accept-Ranges": "bytes",
                   "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime))}
        rng = parse_range(self.headers.get("Range"), len(data))
        if rng is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return self.send_bytes(416, b"", headers, "text/plain")
        if rng == "all":
            return self.send_bytes(200, data, headers, "application/octet-stream")
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self.send_bytes(206, data[start:end + 1], headers, "application/octet-stream")


class Server(ThreadingHTTPServer):
    daemon_threads = True         # a stalled handler never blocks exit
    allow_reuse_address = True
    request_queue_size = 128      # parallel clients open many connections at once
    tls = None                    # an ssl.SSLContext when serving https

    def finish_request(self, request, client_address):
        """The TLS handshake happens here, in the connection's own thread, so a client
        that stalls in it holds up nobody else."""
        if self.tls is None:
            return super().finish_request(request, client_address)
        try:
            request.settimeout(SOCKET_TIMEOUT)
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.store.count("conn.tls_failed")   # e.g. the client did not trust us
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])   # what it speaks: a client must not try h2
    return ctx


# ============================================================================ main


def build_data(args):
    data = {}
    if args.data:
        with open(args.data, encoding="utf-8") as f:
            data = json.load(f)
    rng = random.Random(args.seed)  # generation never depends on the fault dice
    base = args.git_base.rstrip("/")
    if args.generate_pai is not None:
        data["pai"] = gen_pai(args.generate_pai, rng, base)
    if args.generate_volc is not None:
        data["volc"] = gen_volc(args.generate_volc, rng, base)
    if args.generate_codeup is not None:
        data["codeup"] = gen_codeup(args.generate_codeup, rng, base)
    return data


def key_pair(text, flag):
    ident, sep, secret = text.partition(":")
    if not sep or not ident or not secret:
        raise SystemExit(f"emulator: {flag} takes ID:SECRET")
    return {ident: secret}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (127.0.0.1 only)")
    p.add_argument("--port-file", help="also write the port to this file")
    p.add_argument("--data", help="JSON data set to serve")
    p.add_argument("--dump-data", metavar="FILE", help="write the data set served to FILE")
    p.add_argument("--generate-pai", type=int, metavar="N")
    p.add_argument("--generate-volc", type=int, metavar="N")
    p.add_argument("--generate-codeup", type=int, metavar="N")
    p.add_argument("--git-base", default="https://git.example.com",
                   help="prefix of generated clone URLs, e.g. file:///tmp/x/repos")
    p.add_argument("--pai-key", default="testak:testsecret", metavar="ID:SECRET")
    p.add_argument("--pai-sts", metavar="TOKEN", help="require this x-acs-security-token")
    p.add_argument("--volc-key", default="volcak:volcsecret", metavar="AK:SK")
    p.add_argument("--volc-sts", metavar="TOKEN", help="require this X-Security-Token")
    p.add_argument("--volc-region", default="cn-beijing", help="Region in ResponseMetadata")
    p.add_argument("--codeup-token", default="pt-testtoken")
    p.add_argument("--seed", type=int, default=1, help="seeds data generation and faults")
    p.add_argument("--config", metavar="JSON", help="initial knobs, as for POST /_emu/config")
    for knob, default in DEFAULT_KNOBS.items():
        if knob in ("mutate", "error_message"):  # set through --config or POST
            continue
        flag = "--" + knob.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                           metavar="BOOL", dest=knob)
        else:
            ints = ("max_page_size", "retry_after", "hostile_total") + COUNT_KNOBS
            p.add_argument(flag, type=int if knob in ints else float, metavar="N", dest=knob)
    p.add_argument("--tls-cert", metavar="FILE", help="serve https with this PEM certificate "
                   "(chain); needs --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def initial_knobs(args):
    knobs = json.loads(args.config) if args.config else {}
    for k in DEFAULT_KNOBS:
        if getattr(args, k, None) is not None:
            knobs[k] = getattr(args, k)
    return knobs


def make_server(args, data):
    keys = {"pai": key_pair(args.pai_key, "--pai-key"),
            "volc": key_pair(args.volc_key, "--volc-key")}
    store = Store(data, args.seed, keys)
    store.configure(initial_knobs(args))
    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        server.tls = tls_context(args.tls_cert, args.tls_key)
    server.store, server.verbose, server.tree = store, args.verbose, Tree(store)
    server.providers = {"pai": Pai(store, args.pai_sts),
                        "volc": Volc(store, args.volc_sts, args.volc_region),
                        "codeup": Codeup(store, args.codeup_token)}
    return server


def main(argv=None):
    args = parse_args(argv)
    # A cloud answers parallel requests in parallel. Here one interpreter lock is shared by
    # every connection's thread, and a thread that wants it waits up to the switch interval
    # (5 ms by default) while another encodes a page: a stall per request that no cloud
    # front end adds. A short interval keeps the hand-over well under a millisecond.
    sys.setswitchinterval(0.0005)
    try:
        server = make_server(args, build_data(args))
    except (OSError, ValueError, ssl.SSLError) as e:
        sys.stderr.write(f"emulator: {e}\n")
        return 2
    if args.dump_data:
        with open(args.dump_data, "w", encoding="utf-8", errors="surrogatepass") as f:
            json.dump(server.store.data, f, ensure_ascii=False, indent=1)
            f.write("\n")
    # A real service has its index ready: sort each workspace in the default order now, so
    # the first request of 100,000 entries does not pay for it.
    for ws in server.store.pai_workspaces():
        server.store.pai_sorted(ws["WorkspaceId"], "GmtCreateTime", False)

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return: never call it on its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Whoever reads the port may stop us at once: be ready for it before announcing.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(f"{port}\n")
    print(f"PORT {port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
