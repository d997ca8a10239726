"""Foundation: one AWS-compatible endpoint, driven by boto3 and the aws CLI.

STS identity, IAM users, SigV4 authentication failures, the awsQuery/awsJson wire (errors, request
ids, body limit), presigned URLs, `berth env`, graceful restart and the data-dir lock.
(Durability of acknowledged writes across SIGKILL is tested in Rust, not here.)
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import urllib.parse
from pathlib import Path
from unittest import mock

import botocore.auth
import pytest
from botocore.exceptions import ClientError

from berthcompat import (
    ACCOUNT_ID,
    AWS_CLI,
    BODY_LIMIT,
    FORM_CONTENT_TYPE,
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    STS_NAMESPACE,
    STS_VERSION,
    form_body,
    free_port,
    http_request,
    parse_query_error,
    raw_http_exchange,
    sign,
    strip_ns,
    utcnow_naive,
    xml_text,
)

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"
GET_CALLER_IDENTITY = {"Action": "GetCallerIdentity", "Version": STS_VERSION}
ECS_LIST_CLUSTERS = "AmazonEC2ContainerServiceV20141113.ListClusters"
# An operation ECS does not have: answered with a JSON error by every berth.
ECS_UNKNOWN_OPERATION = "AmazonEC2ContainerServiceV20141113.NoSuchOperation"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
UNKNOWN_KEY_ID = "AKIAUNKNOWNKEY000000"
WRONG_SECRET = "wrongSecret/0123456789+abcdefghijklmnopq"
CLI_SERVICE_ERROR_EXIT = 255  # aws CLI v1 exits 255 when the service returned an error (v2: 254)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(5).hex()}"


def error_of(excinfo) -> tuple[str, int, str]:
    """(Code, HTTP status, Message) of a botocore ClientError."""
    response = excinfo.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"].get("Message", ""))


def assert_root_identity(identity: dict) -> None:
    assert identity["Account"] == ACCOUNT_ID
    assert identity["Arn"] == ROOT_ARN
    assert identity["UserId"] == ACCOUNT_ID


def assert_query_error(resp, status: int, code: str) -> dict:
    """The response is an awsQuery ErrorResponse with this status and code, whose RequestId is the
    x-amzn-RequestId header."""
    assert resp.status == status, resp
    error = parse_query_error(resp.body)
    assert error["Code"] == code, resp
    assert error["Type"] == "Sender", resp
    assert error["Message"], resp
    assert resp.request_id, resp
    assert error["RequestId"] == resp.request_id, resp
    return error


def json_error_type(resp) -> str:
    """`__type` of an AWS JSON error body, without any `namespace#` prefix."""
    body = resp.json()
    assert isinstance(body.get("__type"), str) and body["__type"], resp
    return body["__type"].rsplit("#", 1)[-1]


# --------------------------------------------------------------------------------------------
# The server process


def test_health_answers_without_auth(berth):
    resp = http_request("GET", berth.endpoint + "/_berth/health")
    assert resp.status == 200, resp


def test_banner_names_endpoint_data_dir_and_env_command(berth):
    out = berth.output()
    assert berth.listen in out, out
    assert str(berth.data_dir) in out, out
    assert "berth env" in out, out


def test_second_server_on_same_data_dir_refuses_to_start(berth):
    proc, log = berth.spawn(free_port())
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"a second berth server on {berth.data_dir} kept running:\n{log.read_text(errors='replace')}")
    out = log.read_text(errors="replace")
    assert code != 0, out
    assert "already using" in out, out
    # The first server is untouched.
    assert_root_identity(berth.client("sts").get_caller_identity())


# --------------------------------------------------------------------------------------------
# STS GetCallerIdentity


def test_boto3_get_caller_identity_root(berth):
    resp = berth.client("sts").get_caller_identity()
    assert_root_identity(resp)
    meta = resp["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert meta["RequestId"]
    assert meta["HTTPHeaders"]["x-amzn-requestid"] == meta["RequestId"]


def test_cli_get_caller_identity_root(berth):
    result = berth.aws("sts", "get-caller-identity")
    assert result.returncode == 0, result.stderr
    assert_root_identity(result.json())


def test_raw_query_get_caller_identity_xml(berth):
    resp = berth.query(GET_CALLER_IDENTITY)
    assert resp.status == 200, resp
    assert resp.header("Content-Type").startswith("text/xml"), resp
    root = resp.xml()
    assert root.tag == f"{{{STS_NAMESPACE}}}GetCallerIdentityResponse", resp
    assert xml_text(root, "GetCallerIdentityResult", "Account") == ACCOUNT_ID
    assert xml_text(root, "GetCallerIdentityResult", "Arn") == ROOT_ARN
    assert xml_text(root, "GetCallerIdentityResult", "UserId") == ACCOUNT_ID
    assert xml_text(root, "ResponseMetadata", "RequestId") == resp.request_id


def test_berth_env_prints_exports_for_this_server(berth):
    raw = berth.berth_env_raw()
    assert raw.returncode == 0, raw.stderr
    lines = [line for line in raw.stdout.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(re.match(r"export AWS_[A-Z_]+=", line) for line in lines), raw.stdout
    exports = berth.env_exports()
    expected = {
        "AWS_ENDPOINT_URL": berth.endpoint,
        "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    assert {k: exports.get(k) for k in expected} == expected


def _cli_after_eval_berth_env(server) -> subprocess.CompletedProcess:
    """`eval $(berth env ...)` in bash, as the banner says, then the aws CLI with nothing else set."""
    env = {k: v for k, v in server.server_env().items() if not k.startswith("AWS_")}
    env["PATH"] = f"{Path(AWS_CLI).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    script = 'eval $("$0" env --data-dir "$1" --listen "$2") && aws sts get-caller-identity --output json'
    return subprocess.run(["bash", "-c", script, server.bin, str(server.data_dir), server.listen],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_cli_works_with_berth_env_exports(berth):
    proc = _cli_after_eval_berth_env(berth)
    assert proc.returncode == 0, proc.stderr
    assert_root_identity(json.loads(proc.stdout))


# --------------------------------------------------------------------------------------------
# IAM users


def test_iam_user_lifecycle_boto3(berth):
    iam = berth.client("iam")
    name = unique("user")
    resp = iam.create_user(UserName=name, Path="/compat/")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    user = resp["User"]
    assert user["UserName"] == name
    assert user["Path"] == "/compat/"
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/compat/{name}"
    assert re.fullmatch(r"AIDA[A-Z0-9]{12,124}", user["UserId"]), user["UserId"]
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(now - user["CreateDate"]) < datetime.timedelta(minutes=2), user["CreateDate"]

    got = iam.get_user(UserName=name)["User"]
    fields = ["UserName", "Path", "UserId", "Arn", "CreateDate"]
    assert {k: got.get(k) for k in fields} == {k: user[k] for k in fields}

    listed = [u for u in iam.list_users(PathPrefix="/compat/")["Users"] if u["UserName"] == name]
    assert len(listed) == 1
    assert {k: listed[0].get(k) for k in fields} == {k: user[k] for k in fields}

    assert iam.delete_user(UserName=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as err:
        iam.get_user(UserName=name)
    assert error_of(err)[:2] == ("NoSuchEntity", 404)
    assert name not in [u["UserName"] for u in iam.list_users(PathPrefix="/compat/")["Users"]]


def test_iam_create_user_default_path(berth):
    iam = berth.client("iam")
    name = unique("plain")
    user = iam.create_user(UserName=name)["User"]
    assert user["Path"] == "/"
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    iam.delete_user(UserName=name)


def test_iam_create_existing_user_is_entity_already_exists(berth):
    iam = berth.client("iam")
    name = unique("dup")
    first = iam.create_user(UserName=name)["User"]
    with pytest.raises(ClientError) as err:
        iam.create_user(UserName=name, Path="/elsewhere/")
    code, status, message = error_of(err)
    assert (code, status) == ("EntityAlreadyExists", 409)
    assert name in message
    # The failed create changed nothing.
    assert iam.get_user(UserName=name)["User"]["UserId"] == first["UserId"]
    assert iam.get_user(UserName=name)["User"]["Path"] == "/"
    iam.delete_user(UserName=name)


def test_iam_user_names_are_unique_regardless_of_case(berth):
    # AWS: "User names are not distinguished by case" (you cannot have both "John" and "john").
    iam = berth.client("iam")
    name = unique("CaseUser")
    iam.create_user(UserName=name)
    try:
        with pytest.raises(ClientError) as err:
            iam.create_user(UserName=name.lower())
        assert error_of(err)[:2] == ("EntityAlreadyExists", 409)
    finally:
        iam.delete_user(UserName=name)


def test_iam_missing_user_is_no_such_entity(berth):
    iam = berth.client("iam")
    name = unique("ghost")
    with pytest.raises(ClientError) as err:
        iam.get_user(UserName=name)
    code, status, message = error_of(err)
    assert (code, status) == ("NoSuchEntity", 404)
    assert name in message
    with pytest.raises(ClientError) as err:
        iam.delete_user(UserName=name)
    assert error_of(err)[:2] == ("NoSuchEntity", 404)


def test_iam_list_users_paginates_one_at_a_time(berth):
    iam = berth.client("iam")
    prefix = f"/{unique('page')}/"
    names = sorted(unique("pg") for _ in range(3))
    for name in names:
        iam.create_user(UserName=name, Path=prefix)

    pages = list(iam.get_paginator("list_users").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 1}))
    assert [len(p["Users"]) for p in pages] == [1, 1, 1]
    assert [p["IsTruncated"] for p in pages] == [True, True, False]
    assert all(p.get("Marker") for p in pages[:2])
    assert "Marker" not in pages[2]
    assert sorted(u["UserName"] for p in pages for u in p["Users"]) == names

    first = iam.list_users(PathPrefix=prefix, MaxItems=2)
    assert len(first["Users"]) == 2 and first["IsTruncated"] is True and first["Marker"]
    rest = iam.list_users(PathPrefix=prefix, MaxItems=2, Marker=first["Marker"])
    assert len(rest["Users"]) == 1 and rest["IsTruncated"] is False
    assert sorted(u["UserName"] for u in first["Users"] + rest["Users"]) == names

    whole = iam.list_users(PathPrefix=prefix)
    assert whole["IsTruncated"] is False
    assert sorted(u["UserName"] for u in whole["Users"]) == names
    for name in names:
        iam.delete_user(UserName=name)


def test_iam_list_users_path_prefix(berth):
    iam = berth.client("iam")
    base = f"/{unique('pp')}/"
    other = f"/{unique('other')}/"
    a, b, c = unique("a"), unique("b"), unique("c")
    iam.create_user(UserName=a, Path=base)
    iam.create_user(UserName=b, Path=base + "sub/")
    iam.create_user(UserName=c, Path=other)

    assert sorted(u["UserName"] for u in iam.list_users(PathPrefix=base)["Users"]) == sorted([a, b])
    assert [u["UserName"] for u in iam.list_users(PathPrefix=base + "sub/")["Users"]] == [b]
    assert [u["UserName"] for u in iam.list_users(PathPrefix=other)["Users"]] == [c]
    everyone = [u["UserName"] for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    assert {a, b, c} <= set(everyone)
    assert len(everyone) == len(set(everyone))
    for name in (a, b, c):
        iam.delete_user(UserName=name)


def test_iam_users_with_aws_cli(berth):
    path = f"/{unique('cli')}/"
    names = sorted(unique("cli-user") for _ in range(3))
    created = berth.aws("iam", "create-user", "--user-name", names[0], "--path", path).json()["User"]
    assert created["UserName"] == names[0]
    assert created["Path"] == path
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user{path}{names[0]}"
    for name in names[1:]:
        berth.aws("iam", "create-user", "--user-name", name, "--path", path).json()

    got = berth.aws("iam", "get-user", "--user-name", names[0]).json()["User"]
    assert got["UserId"] == created["UserId"]
    assert got["Arn"] == created["Arn"]

    # --page-size 1 makes the CLI send MaxItems=1 and follow every Marker.
    listed = berth.aws("iam", "list-users", "--path-prefix", path, "--page-size", "1").json()["Users"]
    assert sorted(u["UserName"] for u in listed) == names

    dup = berth.aws("iam", "create-user", "--user-name", names[0])
    assert dup.returncode == CLI_SERVICE_ERROR_EXIT, dup
    assert "(EntityAlreadyExists)" in dup.stderr

    for name in names:
        deleted = berth.aws("iam", "delete-user", "--user-name", name)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.strip() == ""
    gone = berth.aws("iam", "get-user", "--user-name", names[0])
    assert gone.returncode == CLI_SERVICE_ERROR_EXIT, gone
    assert "(NoSuchEntity)" in gone.stderr
    assert berth.aws("iam", "list-users", "--path-prefix", path).json()["Users"] == []


# --------------------------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize("service", ["sts", "iam"])
def test_wrong_secret_is_signature_does_not_match(berth, service):
    client = berth.client(service, access_key=ROOT_ACCESS_KEY_ID, secret_key=WRONG_SECRET)
    call = client.get_caller_identity if service == "sts" else client.list_users
    with pytest.raises(ClientError) as err:
        call()
    assert error_of(err)[:2] == ("SignatureDoesNotMatch", 403)
    assert err.value.response["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize("service", ["sts", "iam"])
def test_unknown_access_key_is_invalid_client_token_id(berth, service):
    client = berth.client(service, access_key=UNKNOWN_KEY_ID, secret_key=ROOT_SECRET_ACCESS_KEY)
    call = client.get_caller_identity if service == "sts" else client.list_users
    with pytest.raises(ClientError) as err:
        call()
    assert error_of(err)[:2] == ("InvalidClientTokenId", 403)
    assert err.value.response["ResponseMetadata"]["RequestId"]


def test_cli_with_wrong_secret_is_refused(berth):
    result = berth.aws("sts", "get-caller-identity", secret_key=WRONG_SECRET)
    assert result.returncode == CLI_SERVICE_ERROR_EXIT, result
    assert "(SignatureDoesNotMatch)" in result.stderr


def test_boto3_request_signed_20_minutes_ago_is_expired(berth):
    sts = berth.client("sts")  # retries are off: botocore cannot correct the skew and retry
    past = utcnow_naive() - datetime.timedelta(minutes=20)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=past):
        with pytest.raises(ClientError) as err:
            sts.get_caller_identity()
    code, status, message = error_of(err)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert "Signature expired" in message


def test_raw_request_signed_20_minutes_ago_is_expired(berth):
    resp = berth.query(GET_CALLER_IDENTITY, at=utcnow_naive() - datetime.timedelta(minutes=20))
    error = assert_query_error(resp, 403, "SignatureDoesNotMatch")
    assert "Signature expired" in error["Message"]


def test_raw_request_signed_20_minutes_ahead_is_refused(berth):
    resp = berth.query(GET_CALLER_IDENTITY, at=utcnow_naive() + datetime.timedelta(minutes=20))
    assert_query_error(resp, 403, "SignatureDoesNotMatch")


def test_raw_request_signed_10_minutes_ago_is_accepted(berth):
    resp = berth.query(GET_CALLER_IDENTITY, at=utcnow_naive() - datetime.timedelta(minutes=10))
    assert resp.status == 200, resp
    assert xml_text(resp.xml(), "GetCallerIdentityResult", "Arn") == ROOT_ARN


def test_unsigned_query_request_is_missing_authentication_token(berth):
    resp = http_request("POST", berth.endpoint + "/", form_body(GET_CALLER_IDENTITY),
                        {"Content-Type": FORM_CONTENT_TYPE})
    assert_query_error(resp, 403, "MissingAuthenticationToken")


def test_unsigned_iam_request_is_missing_authentication_token(berth):
    name = unique("unsigned")
    resp = http_request("POST", berth.endpoint + "/",
                        form_body({"Action": "CreateUser", "Version": "2010-05-08", "UserName": name}),
                        {"Content-Type": FORM_CONTENT_TYPE})
    assert_query_error(resp, 403, "MissingAuthenticationToken")
    # Nothing was written.
    with pytest.raises(ClientError) as err:
        berth.client("iam").get_user(UserName=name)
    assert error_of(err)[0] == "NoSuchEntity"


def test_incomplete_authorization_header_is_incomplete_signature(berth):
    headers = {
        "Content-Type": FORM_CONTENT_TYPE,
        "X-Amz-Date": utcnow_naive().strftime("%Y%m%dT%H%M%SZ"),
        "Authorization": f"AWS4-HMAC-SHA256 Credential={ROOT_ACCESS_KEY_ID}/20240101/us-east-1/sts/aws4_request",
    }
    resp = http_request("POST", berth.endpoint + "/", form_body(GET_CALLER_IDENTITY), headers)
    # AWS's common-error pages list IncompleteSignature as 400 (some services answer 403).
    assert resp.status in (400, 403), resp
    assert parse_query_error(resp.body)["Code"] == "IncompleteSignature", resp


def test_unsigned_json_request_is_missing_authentication_token(berth):
    resp = http_request("POST", berth.endpoint + "/", b"{}",
                        {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": ECS_LIST_CLUSTERS})
    assert resp.status in (400, 403), resp
    assert json_error_type(resp) == "MissingAuthenticationTokenException", resp
    assert resp.request_id, resp


# --------------------------------------------------------------------------------------------
# The wire: routing, malformed requests, body limit


@pytest.mark.parametrize("service,version", [("sts", STS_VERSION), ("iam", "2010-05-08")])
def test_unknown_action_is_invalid_action(berth, service, version):
    resp = berth.query({"Action": "NoSuchOperation", "Version": version}, service=service)
    assert_query_error(resp, 400, "InvalidAction")


def test_missing_action_is_a_400_error_response(berth):
    resp = berth.query({"Version": STS_VERSION})
    assert resp.status == 400, resp
    assert parse_query_error(resp.body)["Code"] in ("MissingAction", "InvalidAction"), resp


def test_malformed_form_body_is_a_4xx_error_response(berth):
    resp = berth.signed("POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15&x=%zz")
    assert 400 <= resp.status < 500, resp
    error = parse_query_error(resp.body)
    assert error["Code"], resp
    assert error["RequestId"] == resp.request_id, resp


def test_json_request_for_unknown_target_is_a_json_error(berth):
    resp = berth.signed("POST", "/", b"{}", {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": ECS_UNKNOWN_OPERATION},
                        service="ecs")
    assert 400 <= resp.status < 500, resp
    assert json_error_type(resp), resp
    assert isinstance(resp.json().get("message", resp.json().get("Message")), str), resp
    assert resp.request_id, resp


def _oversized_request(berth, chunked: bool):
    prefix = b"Action=GetCallerIdentity&Version=2011-06-15&Pad="
    body = prefix + b"a" * (BODY_LIMIT + 1024 * 1024 - len(prefix))
    url = berth.endpoint + "/"
    headers = sign("POST", url, body, {"Content-Type": FORM_CONTENT_TYPE}, service="sts",
                   access_key=berth.access_key, secret_key=berth.secret_key)
    headers["Host"] = berth.listen
    piece = 1024 * 1024
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        chunks = [b"%x\r\n%s\r\n" % (len(body[i:i + piece]), body[i:i + piece]) for i in range(0, len(body), piece)]
        chunks.append(b"0\r\n\r\n")
    else:
        headers["Content-Length"] = str(len(body))
        chunks = [body[i:i + piece] for i in range(0, len(body), piece)]
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return raw_http_exchange("127.0.0.1", berth.port, head.encode("latin-1"), chunks)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_limit_is_413(berth, framing):
    resp = _oversized_request(berth, chunked=(framing == "chunked"))
    assert resp.status == 413, resp
    assert resp.request_id, resp
    if resp.body.lstrip().startswith(b"<"):
        assert parse_query_error(resp.body)["Code"], resp
    else:
        assert json_error_type(resp), resp
    # The server is still serving.
    assert_root_identity(berth.client("sts").get_caller_identity())


# --------------------------------------------------------------------------------------------
# Presigned URLs


def _get(url: str):
    return http_request("GET", url)


def _presigned_get(sts, expires: int) -> str:
    # HttpMethod="GET" as the EKS token generators do: without it botocore signs the URL for the
    # operation's own method (POST), and AWS, like berth, refuses it as a GET.
    return sts.generate_presigned_url("get_caller_identity", ExpiresIn=expires, HttpMethod="GET")


def test_presigned_get_caller_identity_url_works(berth):
    url = _presigned_get(berth.client("sts"), 300)
    assert "X-Amz-Signature=" in url
    resp = _get(url)
    assert resp.status == 200, resp
    root = resp.xml()
    assert strip_ns(root.tag) == "GetCallerIdentityResponse"
    assert xml_text(root, "GetCallerIdentityResult", "Account") == ACCOUNT_ID
    assert xml_text(root, "GetCallerIdentityResult", "Arn") == ROOT_ARN
    assert xml_text(root, "ResponseMetadata", "RequestId") == resp.request_id


def _tamper(url: str, how: str) -> str:
    parts = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if how == "signature":
        params = [(k, (v[:-1] + ("0" if v[-1] != "0" else "1")) if k == "X-Amz-Signature" else v) for k, v in params]
    elif how == "added-parameter":
        params.append(("DurationSeconds", "900"))
    elif how == "unknown-key":
        params = [(k, v.replace(ROOT_ACCESS_KEY_ID, UNKNOWN_KEY_ID) if k == "X-Amz-Credential" else v)
                  for k, v in params]
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="")
    tampered = urllib.parse.urlunsplit(parts._replace(query=query))
    assert tampered != url
    return tampered


@pytest.mark.parametrize("how,code", [
    ("signature", "SignatureDoesNotMatch"),
    ("added-parameter", "SignatureDoesNotMatch"),
    ("unknown-key", "InvalidClientTokenId"),
])
def test_tampered_presigned_url_is_refused(berth, how, code):
    url = _presigned_get(berth.client("sts"), 300)
    assert _get(url).status == 200  # the untouched URL works
    assert_query_error(_get(_tamper(url, how)), 403, code)


def test_presigned_url_signed_for_post_is_refused_as_get(berth):
    # The method is part of the canonical request: a URL signed for POST does not authorize a GET.
    url = berth.client("sts").generate_presigned_url("get_caller_identity", ExpiresIn=300)
    assert_query_error(_get(url), 403, "SignatureDoesNotMatch")


def test_expired_presigned_url_is_refused(berth):
    # Signed 10 minutes ago (inside the 15-minute skew window) for 60 seconds: expired 9 minutes ago.
    sts = berth.client("sts")
    with mock.patch.object(botocore.auth, "get_current_datetime",
                           return_value=utcnow_naive() - datetime.timedelta(minutes=10)):
        url = _presigned_get(sts, 60)
    resp = _get(url)
    assert resp.status == 403, resp
    assert parse_query_error(resp.body)["Code"], resp


# --------------------------------------------------------------------------------------------
# Request ids


def test_every_response_carries_a_request_id(berth):
    presigned = _presigned_get(berth.client("sts"), 300)
    responses = {
        "ok": berth.query(GET_CALLER_IDENTITY),
        "presigned": _get(presigned),
        "invalid-action": berth.query({"Action": "NoSuchOperation", "Version": STS_VERSION}),
        "unsigned": http_request("POST", berth.endpoint + "/", form_body(GET_CALLER_IDENTITY),
                                 {"Content-Type": FORM_CONTENT_TYPE}),
        "wrong-secret": berth.query(GET_CALLER_IDENTITY, secret_key=WRONG_SECRET),
        "unknown-key": berth.query(GET_CALLER_IDENTITY, access_key=UNKNOWN_KEY_ID),
        "iam-no-such-entity": berth.query({"Action": "GetUser", "Version": "2010-05-08", "UserName": unique("nobody")},
                                          service="iam"),
        "json-error": berth.signed("POST", "/", b"{}", {"Content-Type": JSON_CONTENT_TYPE,
                                                       "X-Amz-Target": ECS_UNKNOWN_OPERATION}, service="ecs"),
    }
    ids = {}
    for name, resp in responses.items():
        assert resp.request_id, (name, resp)
        ids[name] = resp.request_id
        if resp.body.lstrip().startswith(b"<"):
            root = resp.xml()
            body_id = xml_text(root, "RequestId") if strip_ns(root.tag) == "ErrorResponse" \
                else xml_text(root, "ResponseMetadata", "RequestId")
            assert body_id == resp.request_id, (name, resp)
    assert responses["iam-no-such-entity"].status == 404
    assert len(set(ids.values())) == len(ids), ids


# --------------------------------------------------------------------------------------------
# Generated root key, berth env, graceful restart


def _secret_files(data_dir: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_generated_root_key_works_with_berth_env_and_cli(berth_factory):
    server = berth_factory("generated")
    server.start()
    exports = server.env_exports()
    key_id, secret = exports["AWS_ACCESS_KEY_ID"], exports["AWS_SECRET_ACCESS_KEY"]
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key_id), key_id
    assert re.fullmatch(r"[A-Za-z0-9/+]{40}", secret), "secret is not 40 characters of AWS's alphabet"
    assert exports["AWS_ENDPOINT_URL"] == server.endpoint
    assert exports["AWS_DEFAULT_REGION"] == REGION and exports["AWS_REGION"] == REGION
    # Without --listen, berth env names the address the server recorded in the data dir.
    assert server.env_exports(with_listen=False)["AWS_ENDPOINT_URL"] == server.endpoint
    # The key is stored in the data dir, in files readable by their owner only.
    holders = _secret_files(server.data_dir, secret)
    assert holders, f"the root secret is in no file under {server.data_dir}"
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is {oct(stat.S_IMODE(path.stat().st_mode))}"

    proc = _cli_after_eval_berth_env(server)
    assert proc.returncode == 0, proc.stderr
    assert_root_identity(json.loads(proc.stdout))
    assert server.stop(signal.SIGTERM) == 0, server.output()


def test_graceful_restart_keeps_users_and_root_key(berth_factory):
    server = berth_factory("restart")
    server.start()
    before = server.env_exports()
    iam = server.client("iam")
    names = sorted(unique("keep") for _ in range(3))
    created = {n: iam.create_user(UserName=n, Path="/restart/")["User"] for n in names}
    deleted = unique("deleted")
    iam.create_user(UserName=deleted, Path="/restart/")
    iam.delete_user(UserName=deleted)

    code = server.stop(signal.SIGINT)
    assert code == 0, f"exit {code} after SIGINT:\n{server.output()}"
    server.start()  # same data dir, new port

    after = server.env_exports()
    assert after == server.env_exports(with_listen=False)
    assert after["AWS_ACCESS_KEY_ID"] == before["AWS_ACCESS_KEY_ID"]
    assert after["AWS_SECRET_ACCESS_KEY"] == before["AWS_SECRET_ACCESS_KEY"]
    assert after["AWS_ENDPOINT_URL"] == server.endpoint
    assert_root_identity(server.client("sts").get_caller_identity())

    iam = server.client("iam")
    listed = iam.list_users(PathPrefix="/restart/")["Users"]
    assert sorted(u["UserName"] for u in listed) == names
    fields = ["UserName", "Path", "UserId", "Arn", "CreateDate"]
    for user in listed:
        assert {k: user.get(k) for k in fields} == {k: created[user["UserName"]][k] for k in fields}
    with pytest.raises(ClientError) as err:
        iam.get_user(UserName=deleted)
    assert error_of(err)[0] == "NoSuchEntity"

    code = server.stop(signal.SIGTERM)
    assert code == 0, f"exit {code} after SIGTERM:\n{server.output()}"
