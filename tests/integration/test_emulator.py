"""The emulator's verifiers reproduce the clouds' official signature examples: a request
the real service accepts, the emulator accepts, and nothing else."""
import importlib.util
import os

import pytest

spec = importlib.util.spec_from_file_location(
    "emulator", os.path.join(os.path.dirname(__file__), "..", "emulator", "emulator.py"))
emu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emu)

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
A_HEADERS = {"x-acs-content-sha256": EMPTY, "x-acs-date": "2024-01-01T00:00:00Z",
             "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
             "x-acs-version": "2021-02-04", "x-acs-action": "ListCodeSources",
             "host": "aiworkspace.cn-hangzhou.aliyuncs.com"}
A2_QUERY = "PageNumber=1&PageSize=100&WorkspaceId=12345&SortBy=GmtCreateTime&Order=ASC"


def acs3(headers, query, method="GET", path="/api/v1/codesources"):
    signed = sorted(headers)
    return emu.acs3_signature("testsecret", method, path, query, headers, signed, EMPTY)


def test_a1_official_example():
    h = {"host": "ecs.cn-shanghai.aliyuncs.com", "x-acs-action": "RunInstances",
         "x-acs-version": "2014-05-26", "x-acs-date": "2023-10-26T10:22:32Z",
         "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
         "x-acs-content-sha256": EMPTY}
    q = "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    sig = emu.acs3_signature("YourAccessKeySecret", "POST", "/", q, h, sorted(h), EMPTY)
    assert sig == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def test_a2_a3_a4():
    assert acs3(A_HEADERS, A2_QUERY) == \
        "5aa4acc28dc9fee4c33f4b9e8381dd4d05dc521aaf0eabeb668c2148cef888c3"
    h3 = dict(A_HEADERS, **{"x-acs-security-token": "testtoken"})
    assert acs3(h3, A2_QUERY) == \
        "f228841bbb811141bbf43b2c4a2fef1bae7097971e2fd435fbc4fa7475fbd7b0"
    q4 = "DisplayName=my%20repo%2F%C3%A9%2A~&WorkspaceId=12345"
    assert emu.canonical_query(q4) == q4
    assert acs3(A_HEADERS, q4) == \
        "d3727854dc72360fa41a368a469f083af67b20b15e6e92774fce0866a220f86d"


def test_verify_acs3_accepts_the_vector_and_rejects_tampering():
    sig = acs3(A_HEADERS, A2_QUERY)
    auth = ("ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=" + ";".join(sorted(A_HEADERS))
            + ",Signature=" + sig)
    h = dict(A_HEADERS, authorization=auth)
    now = 1704067200
    emu.verify_acs3("GET", "/api/v1/codesources", A2_QUERY, h, b"", {"testak": "testsecret"},
                    None, set(), now)
    with pytest.raises(emu.ApiError) as e:
        emu.verify_acs3("GET", "/api/v1/codesources", A2_QUERY.replace("100", "99"), h, b"",
                        {"testak": "testsecret"}, None, set(), now)
    assert e.value.code == "SignatureDoesNotMatch"
    with pytest.raises(emu.ApiError) as e:
        emu.verify_acs3("GET", "/api/v1/codesources", A2_QUERY, h, b"",
                        {"testak": "testsecret"}, None, set(), now + 3600)
    assert e.value.code == "InvalidTimeStamp.Expired"
    nonces = set()
    emu.verify_acs3("GET", "/api/v1/codesources", A2_QUERY, h, b"", {"testak": "testsecret"},
                    None, nonces, now)
    with pytest.raises(emu.ApiError) as e:
        emu.verify_acs3("GET", "/api/v1/codesources", A2_QUERY, h, b"",
                        {"testak": "testsecret"}, None, nonces, now)
    assert e.value.code == "SignatureNonceUsed"


@pytest.mark.parametrize("signed,want", [
    (["host", "x-content-sha256", "x-date"],
     "0d469c067144ca77f45db0da6c07e958ec930b4c0b7eb6db47eb50ff0fbfeeb1"),
    (["content-type", "host", "x-content-sha256", "x-date"],
     "3af9a21bcab5cfff830620dc25fe47b03a60de3bc3ef57e0a4f8e29840f7b9ea"),
])
def test_volc_vectors(signed, want):
    body = b'{"WorkspaceId":"ws-123","PageNumber":1,"PageSize":100}'
    bh = emu.sha256_hex(body)
    assert bh == "44d8689c5c2fd23a695926c4e656429aa825a77e1eb4ffd432e980267de1330a"
    h = {"host": "open.volcengineapi.com", "x-date": "20240101T000000Z",
         "x-content-sha256": bh, "content-type": "application/json"}
    q = "Action=ListResources&Version=2023-05-01"
    sig = emu.volc_signature("testsecret", "POST", "/", q, h, signed, bh, "20240101T000000Z",
                             "20240101/cn-beijing/cp/request")
    assert sig == want
    auth = (f"HMAC-SHA256 Credential=testak/20240101/cn-beijing/cp/request, "
            f"SignedHeaders={';'.join(signed)}, Signature={sig}")
    emu.verify_volc("POST", "/", q, dict(h, authorization=auth), body, {"testak": "testsecret"},
                    None, 1704067200)
    with pytest.raises(emu.ApiError) as e:
        emu.verify_volc("POST", "/", q, dict(h, authorization=auth), body + b" ",
                        {"testak": "testsecret"}, None, 1704067200)
    assert e.value.code == "SignatureDoesNotMatch"


def test_fault_knobs_and_counters(emulator):
    import json
    import urllib.error
    import urllib.request

    e = emulator("--generate-codeup", "3")
    e.configure(fail_5xx=1.0)
    req = urllib.request.Request(e.url + "/oapi/v1/platform/user",
                                 headers={"x-yunxiao-token": "pt-testtoken"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 503
    e.configure(fail_5xx=0.0, throttle=1.0, retry_after=2)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 429 and err.value.headers["Retry-After"] == "2"
    assert json.loads(err.value.read())["errorCode"] == "TooManyRequests"
    e.configure(throttle=0.0)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    s = e.stats()
    assert s["codeup.GetCurrentUser"] == 3 and s["fault.5xx"] == 1 and s["fault.throttle"] == 1
