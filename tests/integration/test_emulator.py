"""The emulator itself: its verifiers reproduce the clouds' official signature vectors
(a request the real service accepts, the emulator accepts, and nothing else), it
answers the real shapes and errors, pages and sorts, injects faults at the rates asked,
and counts what it served. The signing here is written independently of the
emulator's, from apis.md."""
import hashlib
import hmac
import http.client
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import uuid
from datetime import datetime, timezone

import pytest

from conftest import CODEUP_TOKEN, EMULATOR, PAI_KEY, VOLC_KEY

spec = importlib.util.spec_from_file_location("emulator", EMULATOR)
emu_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emu_mod)

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PAI_VERSION = "2021-02-04"

# ============================================================================ signing
# Our own signers, from apis.md; they produce wire headers for a real request.


def enc(s):
    return urllib.parse.quote(s, safe="-_.~")


def enc_query(params):
    """The query both as sent and as signed: RFC 3986, sorted by name."""
    return "&".join(f"{enc(k)}={enc(str(v))}" for k, v in sorted(params.items()))


def hexsha(b):
    return hashlib.sha256(b).hexdigest()


def acs3_headers(method, path, params, key_id, secret, host, action, date, nonce,
                 version=PAI_VERSION, body=b"", token=None):
    """All headers of an ACS3-HMAC-SHA256 request, Authorization included."""
    h = {"host": host, "x-acs-action": action, "x-acs-version": version, "x-acs-date": date,
         "x-acs-signature-nonce": nonce, "x-acs-content-sha256": hexsha(body)}
    if token:
        h["x-acs-security-token"] = token
    signed = sorted(h)
    creq = "\n".join([method, "/".join(enc(s) for s in path.split("/")), enc_query(params),
                      "".join(f"{k}:{h[k].strip()}\n" for k in signed), ";".join(signed),
                      hexsha(body)])
    sig = hmac.new(secret.encode(), ("ACS3-HMAC-SHA256\n" + hexsha(creq.encode())).encode(),
                   hashlib.sha256).hexdigest()
    h["authorization"] = (f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders="
                          f"{';'.join(signed)},Signature={sig}")
    return h


def volc_headers(action, body, ak, sk, host, xdate, region="cn-beijing",
                 with_content_type=False, token=None):
    """All headers of a Volcengine HMAC-SHA256 request, Authorization included."""
    h = {"host": host, "x-date": xdate, "x-content-sha256": hexsha(body)}
    if with_content_type:
        h["content-type"] = "application/json"
    if token:
        h["x-security-token"] = token
    signed = sorted(h)
    query = enc_query({"Action": action, "Version": "2023-05-01"})
    creq = "\n".join(["POST", "/", query, "".join(f"{k}:{h[k]}\n" for k in signed),
                      ";".join(signed), hexsha(body)])
    scope = f"{xdate[:8]}/{region}/cp/request"
    sts = "\n".join(["HMAC-SHA256", xdate, scope, hexsha(creq.encode())])
    key = sk.encode()
    for part in (xdate[:8], region, "cp", "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders="
                          f"{';'.join(signed)}, Signature={sig}")
    h.setdefault("content-type", "application/json")
    return h


def signature_of(h):
    return h["authorization"].rsplit("Signature=", 1)[1]


# ============================================================================ vectors
# Restated from apis.md.

A2_PARAMS = {"PageNumber": "1", "PageSize": "100", "WorkspaceId": "12345",
             "SortBy": "GmtCreateTime", "Order": "ASC"}
A_COMMON = dict(key_id="testak", secret="testsecret", host="aiworkspace.cn-hangzhou.aliyuncs.com",
                action="ListCodeSources", date="2024-01-01T00:00:00Z",
                nonce="0123456789abcdef0123456789abcdef")
A_NOW = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
PAI_VECTORS = {
    "A1": (dict(method="POST", path="/", key_id="YourAccessKeyId", secret="YourAccessKeySecret",
                params={"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                        "RegionId": "cn-shanghai"},
                host="ecs.cn-shanghai.aliyuncs.com", action="RunInstances",
                version="2014-05-26", date="2023-10-26T10:22:32Z",
                nonce="3156853299f313e23d1673dc12e1703d"),
           "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"),
    "A2": (dict(method="GET", path="/api/v1/codesources", params=A2_PARAMS, **A_COMMON),
           "5aa4acc28dc9fee4c33f4b9e8381dd4d05dc521aaf0eabeb668c2148cef888c3"),
    "A3": (dict(method="GET", path="/api/v1/codesources", params=A2_PARAMS, token="testtoken",
                **A_COMMON),
           "f228841bbb811141bbf43b2c4a2fef1bae7097971e2fd435fbc4fa7475fbd7b0"),
    "A4": (dict(method="GET", path="/api/v1/codesources",
                params={"DisplayName": "my repo/é*~", "WorkspaceId": "12345"}, **A_COMMON),
           "d3727854dc72360fa41a368a469f083af67b20b15e6e92774fce0866a220f86d"),
}
V_BODY = b'{"WorkspaceId":"ws-123","PageNumber":1,"PageSize":100}'
V_BODY_SHA = "44d8689c5c2fd23a695926c4e656429aa825a77e1eb4ffd432e980267de1330a"
V_NOW = A_NOW
VOLC_VECTORS = {"V1": (False, "0d469c067144ca77f45db0da6c07e958ec930b4c0b7eb6db47eb50ff0fbfeeb1"),
                "V2": (True, "3af9a21bcab5cfff830620dc25fe47b03a60de3bc3ef57e0a4f8e29840f7b9ea")}


def pai_vector(name):
    args, want = PAI_VECTORS[name]
    args = dict(args)
    method, path, params = args.pop("method"), args.pop("path"), args.pop("params")
    return method, path, enc_query(params), acs3_headers(method, path, params, **args), want


@pytest.mark.parametrize("name", sorted(PAI_VECTORS))
def test_pai_vectors_verify(name):
    method, path, query, h, want = pai_vector(name)
    assert signature_of(h) == want  # our signer is right…
    keys = {"YourAccessKeyId": "YourAccessKeySecret", "testak": "testsecret"}
    now = emu_mod.parse_time(h["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
    emu_mod.verify_acs3(method, path, query, h, b"", keys, h.get("x-acs-security-token"),
                        set(), now)  # …and the emulator accepts it


def test_a4_canonical_query_and_a1_canonical_request_hash():
    q = enc_query(PAI_VECTORS["A4"][0]["params"])
    assert q == "DisplayName=my%20repo%2F%C3%A9%2A~&WorkspaceId=12345"
    assert emu_mod.canonical_query(q) == q
    method, path, query, h, _ = pai_vector("A1")
    signed = sorted(k for k in h if k != "authorization")
    creq = emu_mod.canonical_request(method, path, query, h, signed, EMPTY)
    assert hexsha(creq.encode()) == \
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"


@pytest.mark.parametrize("name", sorted(VOLC_VECTORS))
def test_volc_vectors_verify(name):
    with_ct, want = VOLC_VECTORS[name]
    assert hexsha(V_BODY) == V_BODY_SHA
    h = volc_headers("ListResources", V_BODY, "testak", "testsecret", "open.volcengineapi.com",
                     "20240101T000000Z", with_content_type=with_ct)
    assert signature_of(h) == want
    q = "Action=ListResources&Version=2023-05-01"
    emu_mod.verify_volc("POST", "/", q, h, V_BODY, {"testak": "testsecret"}, None, V_NOW)


def pai_rejects(h, code, method="GET", query=None, body=b"", now=A_NOW, keys=None,
                sts=None, nonces=None):
    with pytest.raises(emu_mod.ApiError) as e:
        emu_mod.verify_acs3(method, "/api/v1/codesources", query or enc_query(A2_PARAMS), h, body,
                            keys or {"testak": "testsecret"}, sts,
                            set() if nonces is None else nonces, now)
    assert e.value.code == code
    return e.value


def test_pai_verifier_rejects_everything_else():
    *_, h, _ = pai_vector("A2")
    pai_rejects(h, "SignatureDoesNotMatch", query=enc_query(dict(A2_PARAMS, PageSize="99")))
    pai_rejects(h, "SignatureDoesNotMatch", method="POST")
    pai_rejects(h, "SignatureDoesNotMatch", keys={"testak": "other"})
    assert pai_rejects(h, "InvalidAccessKeyId.NotFound", keys={"k": "s"}).status == 404
    pai_rejects(h, "InvalidTimeStamp.Expired", now=A_NOW + 16 * 60)
    pai_rejects(h, "InvalidTimeStamp.Expired", now=A_NOW - 16 * 60)
    pai_rejects(h, "SignatureDoesNotMatch", body=b"x")
    pai_rejects({k: v for k, v in h.items() if k != "authorization"}, "IncompleteSignature")
    unsigned_extra = dict(h, **{"x-acs-extra": "1"})
    pai_rejects(unsigned_extra, "IncompleteSignature")
    pai_rejects(h, "InvalidSecurityToken.Malformed", sts="tok")
    *_, h3, _ = pai_vector("A3")
    pai_rejects(h3, "InvalidSecurityToken.Mismatch", sts="other")
    nonces = set()
    emu_mod.verify_acs3("GET", "/api/v1/codesources", enc_query(A2_PARAMS), h, b"",
                        {"testak": "testsecret"}, None, nonces, A_NOW)
    pai_rejects(h, "SignatureNonceUsed", nonces=nonces)


def test_volc_verifier_rejects_everything_else():
    q = "Action=ListResources&Version=2023-05-01"
    h = volc_headers("ListResources", V_BODY, "testak", "testsecret", "open.volcengineapi.com",
                     "20240101T000000Z")
    keys = {"testak": "testsecret"}

    def rejects(code, code_n, status, headers=h, body=V_BODY, now=V_NOW, sts=None, k=keys):
        with pytest.raises(emu_mod.ApiError) as e:
            emu_mod.verify_volc("POST", "/", q, headers, body, k, sts, now)
        assert (e.value.code, e.value.code_n, e.value.status) == (code, code_n, status)

    rejects("SignatureDoesNotMatch", 100010, 401, body=V_BODY + b" ")
    rejects("SignatureDoesNotMatch", 100010, 401, k={"testak": "nope"})
    rejects("InvalidAccessKey", 100009, 401, k={"other": "x"})
    rejects("InvalidTimestamp", 100006, 400, now=V_NOW + 3600)
    rejects("MissingParameter", 100002, 400, headers={k: v for k, v in h.items()
                                                      if k != "authorization"})
    rejects("InvalidAccessKey", 100009, 401, sts="needed")
    no_host = dict(h, authorization=h["authorization"].replace("host;", ""))
    rejects("SignatureDoesNotMatch", 100010, 401, headers=no_host)


# ============================================================================ live
# Requests over HTTP to a running emulator, signed as a client would.


def call(emu, method, path, headers=None, body=b"", timeout=10):
    """(status, {lower header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def now_acs():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pai_call(emu, path, params=None, action="ListCodeSources", secret=PAI_KEY[1],
             key_id=PAI_KEY[0], date=None, nonce=None, token=None, version=PAI_VERSION,
             method="GET", timeout=10):
    params = {k: str(v) for k, v in (params or {}).items()}
    h = acs3_headers(method, path, params, key_id, secret, f"127.0.0.1:{emu.port}", action,
                     date or now_acs(), nonce or uuid.uuid4().hex, version=version, token=token)
    query = enc_query(params)
    return call(emu, method, path + ("?" + query if query else ""), h, timeout=timeout)


def pai_json(emu, path, params=None, **kw):
    status, h, body = pai_call(emu, path, params, **kw)
    assert status == 200, body
    return json.loads(body)


def volc_call(emu, action, body, ak=VOLC_KEY[0], sk=VOLC_KEY[1], xdate=None, token=None):
    raw = json.dumps(body).encode()
    h = volc_headers(action, raw, ak, sk, f"127.0.0.1:{emu.port}",
                     xdate or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), token=token)
    return call(emu, "POST", f"/?Action={action}&Version=2023-05-01", h, raw)


def codeup_call(emu, path, params=None, token=CODEUP_TOKEN):
    q = "?" + urllib.parse.urlencode(params) if params else ""
    return call(emu, "GET", path + q, {"x-yunxiao-token": token} if token else {})


ORG = "/oapi/v1/codeup/organizations/org-1"


def all_pages(emu, ws, size, **extra):
    out, page = [], 1
    while True:
        got = pai_json(emu, "/api/v1/codesources", dict(WorkspaceId=ws, PageNumber=page,
                                                       PageSize=size, **extra))
        out += got["CodeSources"]
        if not got["CodeSources"]:
            return out, got["TotalCount"]
        page += 1


def test_pai_list_shape_paging_and_default_order(emulator):
    emu = emulator("--generate-pai", 130)
    status, h, body = pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    got = json.loads(body)
    assert status == 200 and set(got) == {"CodeSources", "TotalCount", "RequestId"}
    assert h["x-acs-request-id"] == got["RequestId"]
    assert got["TotalCount"] == 130 and len(got["CodeSources"]) == 20  # default PageSize
    item = got["CodeSources"][0]
    assert set(item) == set(emu_mod.PAI_FIELDS)
    assert all(isinstance(v, str) for v in item.values())
    items, total = all_pages(emu, "1001", 50)
    data = [c for w in emu.data()["pai"]["workspaces"] if w["WorkspaceId"] == "1001"
            for c in w["code_sources"]]
    want = sorted(data, key=lambda c: (c["GmtCreateTime"], c["CodeSourceId"]))
    assert total == 130 and items == want


def test_pai_sorting_filter_and_get(emulator):
    emu = emulator("--generate-pai", 60)
    asc, _ = all_pages(emu, "1001", 100)
    desc, _ = all_pages(emu, "1001", 100, Order="DESC")
    assert desc == asc[::-1]
    by_name, _ = all_pages(emu, "1001", 100, SortBy="DisplayName")
    assert [c["DisplayName"] for c in by_name] == sorted(c["DisplayName"] for c in asc)
    by_id, _ = all_pages(emu, "1001", 100, SortBy="CodeSourceId")
    assert [c["CodeSourceId"] for c in by_id] == sorted(c["CodeSourceId"] for c in asc)
    got = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "DisplayName": "DUP",
                                                "PageSize": 100})
    want = [c for c in asc if "dup" in c["DisplayName"].lower()]
    assert got["TotalCount"] == len(want) >= 5 and got["CodeSources"] == want
    slash = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "DisplayName": "a/b"})
    assert [c["DisplayName"] for c in slash["CodeSources"]] == ["a/b"]
    one = pai_json(emu, f"/api/v1/codesources/{asc[3]['CodeSourceId']}", action="GetCodeSource")
    assert one.pop("RequestId") and one == asc[3]
    status, _, body = pai_call(emu, "/api/v1/codesources/nope", action="GetCodeSource")
    assert status == 404


def test_pai_page_size_cap_is_switchable(emulator):
    emu = emulator("--generate-pai", 120, "--max-page-size", 50)
    got = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 100})
    assert len(got["CodeSources"]) == 50 and got["TotalCount"] == 120
    emu.configure(max_page_size=100)
    got = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 100})
    assert len(got["CodeSources"]) == 100


def test_pai_hostile_knobs(emulator):
    emu = emulator("--generate-pai", 30, "--hostile-total", 2**63 - 1)

    def page(n, size=10):
        return pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageNumber": n,
                                                     "PageSize": size})

    first = page(1)
    assert first["TotalCount"] == 2**63 - 1 and len(first["CodeSources"]) == 10
    assert page(4)["CodeSources"] == []
    emu.configure(hostile_empty_pages=True)
    assert page(1)["CodeSources"] == first["CodeSources"] and page(2)["CodeSources"] == []
    emu.configure(hostile_empty_pages=False, hostile_repeat_pages=True)
    assert page(3)["CodeSources"] == first["CodeSources"]
    emu.configure(hostile_repeat_pages=False, hostile_records_per_page=500, hostile_total=None,
                  hostile_pad_bytes=1000)
    got = page(2)
    assert got["TotalCount"] == 30 and len(got["Padding"]) == 1000
    assert [c["CodeSourceId"] for c in got["CodeSources"]] == [f"h2-{i}" for i in range(500)]
    with pytest.raises(urllib.error.HTTPError):
        emu.configure(hostile_total=-1)


def test_pai_workspaces(emulator):
    emu = emulator("--generate-pai", 10)
    got = pai_json(emu, "/api/v1/workspaces", {"PageSize": 1}, action="ListWorkspaces")
    assert got["TotalCount"] == 2 and len(got["Workspaces"]) == 1
    assert "code_sources" not in got["Workspaces"][0]
    got = pai_json(emu, "/api/v1/workspaces", {"WorkspaceIds": "1002,9999"},
                   action="ListWorkspaces")
    assert [w["WorkspaceId"] for w in got["Workspaces"]] == ["1002"]


def pai_error(emu, want_status, want_code, path="/api/v1/codesources", **kw):
    status, h, body = pai_call(emu, path, {"WorkspaceId": "1001"}, **kw)
    err = json.loads(body)
    assert (status, err["Code"]) == (want_status, want_code), body
    assert set(err) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert h["x-acs-request-id"] == err["RequestId"]
    return err


def test_pai_real_errors_over_http(emulator):
    emu = emulator("--generate-pai", 5)
    pai_error(emu, 400, "SignatureDoesNotMatch", secret="wrong")
    pai_error(emu, 404, "InvalidAccessKeyId.NotFound", key_id="nobody")
    pai_error(emu, 400, "InvalidTimeStamp.Expired",
              date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1800)))
    pai_error(emu, 404, "InvalidApi.NotFound", action="ListNothing")
    pai_error(emu, 404, "InvalidApi.NotFound", path="/api/v1/elsewhere")
    pai_error(emu, 400, "InvalidVersion", version="2020-12-03")
    nonce = uuid.uuid4().hex
    pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"}, nonce=nonce)
    pai_error(emu, 400, "SignatureNonceUsed", nonce=nonce)
    status, _, body = call(emu, "GET", "/api/v1/codesources?WorkspaceId=1001",
                           {"x-acs-action": "ListCodeSources", "x-acs-version": PAI_VERSION})
    assert (status, json.loads(body)["Code"]) == (400, "IncompleteSignature")
    s = emu.stats()
    assert s["pai.ListCodeSources"] == 8 and s["pai.ListNothing"] == 1  # bad ones count too


def test_pai_sts_is_required_when_configured(emulator):
    emu = emulator("--generate-pai", 5, "--pai-sts", "sts-1")
    pai_error(emu, 403, "InvalidSecurityToken.Malformed")
    pai_error(emu, 403, "InvalidSecurityToken.Mismatch", token="sts-2")
    assert pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001"}, token="sts-1")


def test_volc_list_resources(emulator):
    emu = emulator("--generate-volc", 150)
    status, h, body = volc_call(emu, "ListResources", {"WorkspaceId": "ws-0001",
                                                       "PageNumber": 2, "PageSize": 100})
    got = json.loads(body)
    assert status == 200
    meta = got["ResponseMetadata"]
    assert meta["Action"] == "ListResources" and meta["Service"] == "cp" and meta["RequestId"]
    r = got["Result"]
    assert (r["PageNumber"], r["PageSize"], r["TotalCount"], len(r["Items"])) == (2, 100, 150, 50)
    data = emu.data()["volc"]["workspaces"][0]["resources"]
    times = [emu_mod.epoch_of(x["CreateTime"]) for x in data]
    assert times == sorted(times) and r["Items"] == data[100:]
    assert set(r["Items"][0]["Configuration"]["Git"]) >= {"Url", "UserToken", "Password",
                                                           "AccessKey", "SecretKey"}
    flt = {"WorkspaceId": "ws-0001", "PageSize": 100, "Filter": {"Name": "DUP"}}
    names = [i["Name"] for i in json.loads(volc_call(emu, "ListResources", flt)[2])
             ["Result"]["Items"]]
    assert names and all("dup" in n.lower() for n in names)
    flt = {"WorkspaceId": "ws-0001", "Filter": {"Ids": [data[7]["Id"]]}}
    assert json.loads(volc_call(emu, "ListResources", flt)[2])["Result"]["Items"] == [data[7]]
    got = json.loads(volc_call(emu, "ListWorkspaces", {"PageSize": 10})[2])
    assert [w["Id"] for w in got["Result"]["Items"]] == ["ws-0001"]


def volc_error(emu, want_status, want_code, want_n, action="ListResources", body=None, **kw):
    status, _, raw = volc_call(emu, action, body or {"WorkspaceId": "ws-0001"}, **kw)
    got = json.loads(raw)
    assert "Result" not in got
    err = got["ResponseMetadata"]["Error"]
    assert (status, err["Code"], err.get("CodeN")) == (want_status, want_code, want_n), raw
    assert got["ResponseMetadata"]["RequestId"]


def test_volc_real_errors(emulator):
    emu = emulator("--generate-volc", 5)
    volc_error(emu, 401, "SignatureDoesNotMatch", 100010, sk="wrong")
    volc_error(emu, 401, "InvalidAccessKey", 100009, ak="nobody")
    volc_error(emu, 400, "InvalidTimestamp", 100006,
               xdate=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 1800)))
    volc_error(emu, 400, "MissingParameter", 100002, body={"PageSize": 10})
    for size in (0, 101, "10"):
        volc_error(emu, 400, "InvalidParameter", 100004,
                   body={"WorkspaceId": "ws-0001", "PageSize": size})
    volc_error(emu, 403, "AccessDenied", 100013, body={"WorkspaceId": "ws-nope"})
    emu.configure(throttle=1.0, retry_after=3)
    status, h, _ = volc_call(emu, "ListResources", {"WorkspaceId": "ws-0001"})
    assert status == 429 and h["retry-after"] == "3"
    volc_error(emu, 429, "FlowLimitExceeded", 100018)
    emu.configure(throttle=0.0, fail_5xx=1.0)
    volc_error(emu, 500, "InternalError", 100014)


def test_volc_sts(emulator):
    emu = emulator("--generate-volc", 3, "--volc-sts", "vtok")
    volc_error(emu, 401, "InvalidAccessKey", 100009)
    status, _, _ = volc_call(emu, "ListResources", {"WorkspaceId": "ws-0001"}, token="vtok")
    assert status == 200


def test_codeup_token_groups_and_repositories(emulator):
    emu = emulator("--generate-codeup", 250)
    status, h, body = codeup_call(emu, "/oapi/v1/platform/user", token="pt-wrong")
    assert status == 401 and json.loads(body)["errorCode"] == "InvalidTokenError"
    assert codeup_call(emu, "/oapi/v1/platform/user")[0] == 200
    status, h, body = codeup_call(emu, ORG + "/namespaces", {"orderBy": "created_at",
                                                             "sort": "asc"})
    tops = json.loads(body)
    assert [g["path"] for g in tops] == ["platform", "ml", "web"]
    assert all(g["kind"] == "group" for g in tops)
    assert set(tops[0]) >= {"id", "name", "path", "fullPath", "nameWithNamespace",
                            "pathWithNamespace", "parentId", "visibility", "webUrl", "avatarUrl"}
    subs = json.loads(codeup_call(emu, ORG + "/namespaces", {"parentId": tops[0]["id"]})[2])
    assert sorted(g["path"] for g in subs) == ["core", "tools"]
    deep = json.loads(codeup_call(emu, ORG + "/namespaces", {"parentId": subs[0]["id"]})[2])
    assert [g["path"] for g in deep] == ["deep"]
    status, h, body = codeup_call(emu, ORG + "/repositories", {"perPage": 100, "page": 3,
                                                               "orderBy": "created_at",
                                                               "sort": "asc"})
    page3 = json.loads(body)
    assert len(page3) == 50 and (h["x-total"], h["x-total-pages"], h["x-page"]) == \
        ("250", "3", "3")
    assert h["x-next-page"] == "" and h["x-prev-page"] == "2" and h["x-request-id"]
    assert set(page3[0]) >= {"id", "name", "path", "description", "webUrl", "createdAt",
                             "lastActivityAt", "archived", "namespaceId", "pathWithNamespace",
                             "visibility", "httpUrlToRepo", "defaultBranch"}
    repos = emu.data()["codeup"]["organizations"][0]["repositories"]
    assert any(r["archived"] for r in repos) and any(r["namespaceId"] == 1 for r in repos)
    assert codeup_call(emu, ORG + "/repositories", {"perPage": 101})[0] == 400
    assert codeup_call(emu, "/oapi/v1/codeup/organizations/other/namespaces")[0] == 403


def test_codeup_list_organizations(emulator, tmp_path):
    """ListOrganizations: the token checked, the documented fields, perPage 100 by default,
    the paging headers (or none with codeup_headers off)."""
    orgs = [{"id": f"org-{i:03d}", "name": f"team {i}", "createdAt": "2024-01-01T00:00:00Z"}
            for i in range(130)]
    (tmp_path / "d.json").write_text(json.dumps({"codeup": {"organizations": orgs}}))
    emu = emulator("--data", tmp_path / "d.json")
    path = "/oapi/v1/platform/organizations"
    assert codeup_call(emu, path, token="pt-wrong")[0] == 401
    status, h, body = codeup_call(emu, path)
    got = json.loads(body)
    assert status == 200 and len(got) == 100 and got[0]["id"] == "org-000"
    assert set(got[0]) == {"id", "name", "description", "creatorId", "defaultRole",
                           "createdAt", "updateAt"}
    assert got[0]["name"] == "team 0" and "namespaces" not in got[0]
    assert (h["x-total"], h["x-next-page"]) == ("130", "2")
    status, h, body = codeup_call(emu, path, {"page": 2, "perPage": 100})
    assert len(json.loads(body)) == 30 and h["x-next-page"] == ""
    assert codeup_call(emu, path, {"perPage": 101})[0] == 400
    emu.configure(codeup_headers=False)
    status, h, body = codeup_call(emu, path, {"page": 2})
    assert len(json.loads(body)) == 30 and "x-next-page" not in h and "x-total" not in h
    assert emu.stats()["codeup.ListOrganizations"] == 5


def test_rename_a_workspace_or_organization(emulator):
    emu = emulator("--generate-pai", 3, "--generate-volc", 3, "--generate-codeup", 3)
    assert emu.rename("pai", "1001", "renamed")["WorkspaceName"] == "renamed"
    got = pai_json(emu, "/api/v1/workspaces", {"WorkspaceIds": "1001"}, action="ListWorkspaces")
    assert [w["WorkspaceName"] for w in got["Workspaces"]] == ["renamed"]
    emu.rename("volc", "ws-0001", "v")
    assert emu.data()["volc"]["workspaces"][0]["Name"] == "v"
    emu.rename("codeup", "org-1", "o")
    assert json.loads(codeup_call(emu, "/oapi/v1/platform/organizations")[2])[0]["name"] == "o"
    with pytest.raises(urllib.error.HTTPError):
        emu.rename("pai", "nope", "x")


def test_codeup_switches_and_get_repository(emulator):
    emu = emulator("--generate-codeup", 30)
    emu.configure(codeup_headers=False, codeup_list_full=False)
    status, h, body = codeup_call(emu, ORG + "/repositories", {"perPage": 10})
    assert status == 200 and "x-total" not in h and "x-next-page" not in h and h["x-request-id"]
    r = json.loads(body)[0]
    assert "httpUrlToRepo" not in r and "defaultBranch" not in r
    for ident in (str(r["id"]), urllib.parse.quote(r["pathWithNamespace"], safe="")):
        status, _, body = codeup_call(emu, f"{ORG}/repositories/{ident}")
        full = json.loads(body)
        assert status == 200 and full["id"] == r["id"]
        assert full["httpUrlToRepo"] and full["defaultBranch"]
    status, _, body = codeup_call(emu, f"{ORG}/repositories/999999")
    assert status == 404 and json.loads(body)["errorCode"]


def test_faults_at_the_configured_rates_and_reproducible(emulator):
    def run(seed):
        emu = emulator("--generate-codeup", 5, "--seed", seed)
        emu.configure(fail_5xx=0.3, throttle=0.2)
        return emu, [codeup_call(emu, "/oapi/v1/platform/user")[0] for _ in range(300)]

    emu, statuses = run(5)
    s = emu.stats()
    assert 60 <= statuses.count(500) <= 120 and s["fault.5xx"] == statuses.count(500)
    assert 25 <= statuses.count(429) <= 75 and s["fault.throttle"] == statuses.count(429)
    assert s["codeup.GetCurrentUser"] == 300 == s["total"]
    assert run(5)[1] == statuses
    emu.reset_stats()
    assert emu.stats() == {}


def test_transport_faults(emulator):
    emu = emulator("--generate-pai", 5, "--retry-after", 2)
    emu.configure(throttle=1.0)
    status, h, body = pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    assert status == 400 and json.loads(body)["Code"] == "Throttling.User"
    assert h["retry-after"] == "2"
    emu.configure(throttle=0.0, reset=1.0)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    emu.configure(reset=0.0, truncate=1.0)
    with pytest.raises(http.client.IncompleteRead):
        pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    emu.configure(truncate=0.0, malformed=1.0)
    status, _, body = pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    emu.configure(malformed=0.0, down=True)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})
    emu.configure(down=False, stall=1.0, stall_s=0.5, latency_ms=100)
    t = time.monotonic()
    assert pai_call(emu, "/api/v1/codesources", {"WorkspaceId": "1001"})[0] == 200
    assert time.monotonic() - t >= 0.6
    s = emu.stats()
    for fault in ("throttle", "reset", "truncate", "malformed", "down", "stall"):
        assert s[f"fault.{fault}"] == 1, fault


def test_control_endpoints_are_never_faulted(emulator):
    emu = emulator("--generate-pai", 5)
    emu.configure(down=True, reset=1.0, truncate=1.0, malformed=1.0, fail_5xx=1.0,
                  latency_ms=0)
    assert emu.stats() == {} and emu.data()["pai"]
    with pytest.raises(Exception):
        emu.configure(nonsense=1)
    assert call(emu, "POST", "/_emu/config", body=b"{not json")[0] == 400
    assert call(emu, "POST", "/_emu/config", body=b'{"fail_5xx": 2}')[0] == 400


def test_mutation_while_paging(emulator):
    emu = emulator("--generate-pai", 100)
    before = {c["CodeSourceId"] for c in all_pages(emu, "1001", 100)[0]}
    emu.configure(mutate={"after_requests": 2, "add": 3, "remove": 2, "provider": "pai"})
    p1 = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 40})
    p2 = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 40,
                                               "PageNumber": 2})
    p3 = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 40,
                                               "PageNumber": 3})
    assert p1["TotalCount"] == p2["TotalCount"] == 100 and p3["TotalCount"] == 101
    after = {c["CodeSourceId"] for c in all_pages(emu, "1001", 100)[0]}
    assert len(before - after) == 2 and len(after - before) == 3
    newest = p3["CodeSources"][-3:]
    assert all(c["CodeSourceId"] not in before for c in newest)  # newest sort last
    assert emu.stats()["mutations"] == 1


def test_a_page_asked_again_follows_every_change(emulator):
    """A page's entries are encoded once and served again until the data changes; the
    request id stays each answer's own."""
    emu = emulator("--generate-pai", 30)
    q = {"WorkspaceId": "1001", "PageSize": 10}
    first = pai_json(emu, "/api/v1/codesources", q)
    again = pai_json(emu, "/api/v1/codesources", q)
    assert again == dict(first, RequestId=again["RequestId"])
    assert again["RequestId"] != first["RequestId"]
    named = pai_json(emu, "/api/v1/codesources", dict(q, DisplayName="dup"))
    assert all("dup" in c["DisplayName"].lower() for c in named["CodeSources"])
    assert len(named["CodeSources"]) < len(first["CodeSources"])
    emu.configure(mutate={"after_requests": 0, "change": 1, "provider": "pai"})
    moved = pai_json(emu, "/api/v1/codesources", q)
    assert "/moved-" in moved["CodeSources"][0]["CodeRepo"]
    assert moved["CodeSources"][1:] == first["CodeSources"][1:]


def test_garbage_never_kills_it(emulator):
    emu = emulator("--generate-pai", 5, "--generate-codeup", 3)
    for raw in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a" * 70000,
                b"POST /?Action=ListResources HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                b"POST /?Action=ListResources HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                b"POST /?Action=X HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"GET /api/v1/codesources?%zz=%%&&=& HTTP/1.1\r\nAuthorization: ACS3-HMAC-SHA256"
                b" Credential=,,\r\nx-acs-action: ListCodeSources\r\n\r\n",
                b"GET /oapi/v1/codeup/organizations/%ff%fe/repositories/%2F HTTP/1.1\r\n"
                b"x-yunxiao-token: pt-testtoken\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    assert call(emu, "PUT", "/api/v1/codesources")[0] == 404
    assert call(emu, "HEAD", "/oapi/v1/platform/user")[0] == 401
    assert emu.stats()["total"] >= 3
    assert codeup_call(emu, "/oapi/v1/platform/user")[0] == 200


def test_generators_are_deterministic_and_awkward(emulator, tmp_path):
    args = ("--generate-pai", 300, "--generate-volc", 40, "--generate-codeup", 40,
            "--git-base", "file:///r")
    a = emulator(*args, "--dump-data", tmp_path / "dump.json").data()
    assert json.loads((tmp_path / "dump.json").read_text()) == a
    assert emulator(*args).data() == a
    ws = {w["WorkspaceId"]: w["code_sources"] for w in a["pai"]["workspaces"]}
    assert set(ws) == {"1001", "1002"} and len(ws["1001"]) == 300 and ws["1002"]
    names = [c["DisplayName"] for c in ws["1001"]]
    assert names.count("dup") >= 4 and {".", "..", "", "a/b"} <= set(names)
    assert any(len(n.encode()) > 255 for n in names) and any("~" in n for n in names)
    assert any(any(ord(ch) < 0x20 for ch in n) for n in names)
    assert any("\u4e00" <= ch <= "\u9fff" for n in names for ch in n)
    assert any(c["CodeRepoAccessToken"] for c in ws["1001"])
    assert any(not c["CodeBranch"] for c in ws["1001"]) and \
        sum(bool(c["CodeBranch"]) for c in ws["1001"]) > 150
    times = [c["GmtCreateTime"] for c in ws["1001"]]
    assert times == sorted(times) and len(set(times)) < len(times)
    assert all(c["CodeRepo"] == f"file:///r/pai/pai-1001-{i}.git"
               for i, c in enumerate(ws["1001"]))
    res = a["volc"]["workspaces"][0]["resources"]
    assert any(r["Configuration"]["Git"]["SecretKey"] for r in res)
    assert a["codeup"]["organizations"][0]["repositories"][0]["httpUrlToRepo"] == \
        "file:///r/codeup/codeup-0.git"


def test_port_file_and_clean_exit_on_sigterm(tmp_path):
    pf = tmp_path / "port"
    p = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--port-file", str(pf)],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()  # bounded by the test alarm
        assert line.startswith("PORT ") and pf.read_text().strip() == line.split()[1]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        p.stdout.close()


def test_sigterm_the_moment_the_port_is_announced(tmp_path):
    # A supervisor may stop the emulator as soon as the port file appears: the handler
    # must be in place by then, or the stop is an unclean death by signal.
    for i in range(20):
        pf = tmp_path / f"port{i}"
        p = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--port-file", str(pf)],
                             stdout=subprocess.DEVNULL)
        try:
            while not pf.exists():  # bounded by the test alarm
                pass
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
        finally:
            p.kill()


def test_tree_listing_files_ranges_and_head(emulator):
    emu = emulator("--generate-pai", 30)
    status, h, body = call(emu, "GET", "/_tree/pai/1002/")
    assert status == 200 and b'href="same/"' in body and b'href="same~10/"' in body
    assert b'href="other_b/"' in body
    assert call(emu, "GET", "/_tree/pai/1002")[0] == 301
    cs = next(c for w in emu.data()["pai"]["workspaces"] for c in w["code_sources"]
              if c["CodeSourceId"] == "9")
    url = (cs["CodeRepo"] + "\n").encode()
    assert call(emu, "GET", "/_tree/pai/1002/same/url")[2] == url
    status, h, body = call(emu, "GET", "/_tree/pai/1002/same/url", {"Range": "bytes=2-5"})
    assert status == 206 and body == url[2:6] and h["content-range"] == f"bytes 2-5/{len(url)}"
    status, h, body = call(emu, "HEAD", "/_tree/pai/1002/same/url")
    assert status == 200 and body == b"" and h["content-length"] == str(len(url))
    assert call(emu, "GET", "/_tree/pai/1002/same/url", {"Range": "bytes=999-"})[0] == 416
    meta = json.loads(call(emu, "GET", "/_tree/pai/1002/other-a/meta.json")[2])
    assert meta["CodeRepoAccessToken"] == "******"
    assert call(emu, "GET", "/_tree/pai/1002/nope/")[0] == 404
    s = emu.stats()
    assert (s["tree.List"], s["tree.File"], s["total"]) == (3, 5, 8)  # peers' requests count


@pytest.mark.timeout_s(120)
def test_hundred_thousand_entries_page_fast(emulator):
    emu = emulator("--generate-pai", 100000)
    t = time.monotonic()
    first = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 100})
    for page in (2, 500, 1000):
        got = pai_json(emu, "/api/v1/codesources", {"WorkspaceId": "1001", "PageSize": 100,
                                                    "PageNumber": page})
        assert len(got["CodeSources"]) == 100
    assert first["TotalCount"] == 100000
    assert time.monotonic() - t < 10
