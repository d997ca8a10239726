"""IAM, STS and OIDC federation, driven by boto3 and the aws CLI against a real `berth server`.

The proof of issue 3: a GitHub-Actions-shaped OIDC issuer on 127.0.0.1 (oidc_issuer.py, real keys,
real discovery + JWKS over HTTP) is registered as an IAM OIDC provider; a deploy role trusts only
`repo:acme/shop:ref:refs/heads/main` of it; AssumeRoleWithWebIdentity (unsigned, as boto3 and the CLI
send it) succeeds for main and is refused for every other token; the credentials it returns can do what
the role allows and nothing else. Then: an unreachable or silent issuer (IDPCommunicationError, quickly),
the IAM API through botocore's own parsing (roles, managed and inline policies, access keys, OIDC
providers, their errors), and AssumeRole with a user's key.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from berthcompat import ACCOUNT_ID, REGION, run_aws_cli
from oidc_issuer import GITHUB_AUDIENCE, OidcIssuer, decode_header

THUMBPRINT = "a" * 40
MAIN_SUB = "repo:acme/shop:ref:refs/heads/main"
WEB_IDENTITY_DENIED = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
# AWS's messages, word for word.
NOT_A_JWT = "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)"
INVALID_CLIENT_TOKEN = "The security token included in the request is invalid."
DURATION_ABOVE_MAX = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
CLI_SERVICE_ERROR_EXIT = 255  # aws CLI v1 exits 255 when the service returned an error
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
# How long an unreachable or silent issuer may keep AssumeRoleWithWebIdentity waiting.
IDP_ANSWER_BOUND_S = 10.0


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(5).hex()}"


def error_of(excinfo) -> tuple[str, int, str]:
    """(Code, HTTP status, Message) of a botocore ClientError."""
    response = excinfo.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"].get("Message", ""))


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def trust_account() -> dict:
    return policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                   "Action": "sts:AssumeRole"})


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def anonymous_sts(berth):
    """An STS client with no credentials at all: boto3 sends AssumeRoleWithWebIdentity unsigned.
    Each request's headers are recorded in `client.sent_headers`."""
    session = boto3.session.Session(region_name=REGION)
    assert session.get_credentials() is None, "the test environment leaks AWS credentials"
    client = session.client("sts", endpoint_url=berth.endpoint,
                            config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                          connect_timeout=5, read_timeout=60))
    sent: list[dict] = []
    client.meta.events.register("before-send.sts.*",
                                lambda request, **_: sent.append(dict(request.headers.items())))
    client.sent_headers = sent
    return client


def anonymous_cli_env(berth) -> dict[str, str]:
    env = berth.cli_env()
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    return env


def session_cli_env(berth, credentials: dict) -> dict[str, str]:
    env = berth.cli_env(credentials["AccessKeyId"], credentials["SecretAccessKey"])
    env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
    return env


def session_client(berth, service: str, credentials: dict):
    return berth.client(service, access_key=credentials["AccessKeyId"],
                        secret_key=credentials["SecretAccessKey"], session_token=credentials["SessionToken"])


def assert_temporary_credentials(credentials: dict, lifetime: int = 3600) -> None:
    key = credentials["AccessKeyId"]
    assert key.startswith("ASIA") and len(key) == 20 and key.isalnum() and key.isupper(), key
    assert len(credentials["SecretAccessKey"]) == 40, credentials
    assert len(credentials["SessionToken"]) >= 16, credentials
    expiration = credentials["Expiration"]
    if isinstance(expiration, str):  # the CLI's JSON
        expiration = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    ahead = (expiration - utcnow()).total_seconds()
    assert lifetime - 120 <= ahead <= lifetime + 5, f"Expiration {expiration} is {ahead:.0f} s ahead, not ~{lifetime}"


# --------------------------------------------------------------------------------------------
# The GitHub deploy setup: issuer, provider and role (made with the aws CLI)


@dataclass
class GithubDeploy:
    issuer: OidcIssuer
    provider_arn: str
    key_prefix: str  # what the provider ARN says after `oidc-provider/`: the condition keys' prefix
    role_name: str
    role_arn: str
    role_id: str
    trust_policy: dict
    cli_provider: dict
    cli_role: dict


@pytest.fixture(scope="module")
def issuer():
    with OidcIssuer() as iss:
        yield iss


@pytest.fixture(scope="module")
def github(berth, issuer) -> GithubDeploy:
    """`aws iam create-open-id-connect-provider` for the issuer, then `aws iam create-role` for a deploy
    role trusting only acme/shop's main branch, with an inline policy allowing iam:ListRoles."""
    provider = berth.aws("iam", "create-open-id-connect-provider", "--url", issuer.url,
                         "--client-id-list", GITHUB_AUDIENCE, "--thumbprint-list", THUMBPRINT).json()
    provider_arn = provider["OpenIDConnectProviderArn"]
    prefix = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/"
    assert provider_arn.startswith(prefix), provider
    key_prefix = provider_arn[len(prefix):]
    trust = policy({
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{key_prefix}:aud": GITHUB_AUDIENCE},
            "StringLike": {f"{key_prefix}:sub": MAIN_SUB},
        },
    })
    role_name = unique("github-deploy")
    role = berth.aws("iam", "create-role", "--role-name", role_name,
                     "--assume-role-policy-document", json.dumps(trust),
                     "--description", "assumed by acme/shop's main branch").json()
    berth.aws("iam", "put-role-policy", "--role-name", role_name, "--policy-name", "list-roles",
              "--policy-document", json.dumps(policy(allow("iam:ListRoles")))).json()
    return GithubDeploy(issuer=issuer, provider_arn=provider_arn, key_prefix=key_prefix, role_name=role_name,
                        role_arn=role["Role"]["Arn"], role_id=role["Role"]["RoleId"], trust_policy=trust,
                        cli_provider=provider, cli_role=role)


def assume_web(berth, github: GithubDeploy, token: str, session: str = "gha-run-1", **kw) -> dict:
    return anonymous_sts(berth).assume_role_with_web_identity(
        RoleArn=github.role_arn, RoleSessionName=session, WebIdentityToken=token, **kw)


# --------------------------------------------------------------------------------------------
# 1. The proof


def test_cli_registers_the_github_provider_and_the_deploy_role(berth, github):
    assert github.provider_arn == f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/127.0.0.1:{github.issuer.port}"
    assert github.key_prefix == github.issuer.host
    role = github.cli_role["Role"]
    assert role["RoleName"] == github.role_name
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{github.role_name}"
    assert role["RoleId"].startswith("AROA"), role
    assert role["Path"] == "/"
    assert role["AssumeRolePolicyDocument"] == github.trust_policy

    shown = berth.aws("iam", "get-open-id-connect-provider",
                      "--open-id-connect-provider-arn", github.provider_arn).json()
    assert shown["Url"] == github.issuer.host  # AWS shows the URL without its scheme
    assert shown["ClientIDList"] == [GITHUB_AUDIENCE]
    assert shown["ThumbprintList"] == [THUMBPRINT]


def test_main_branch_assumes_the_deploy_role(berth, github):
    sts = anonymous_sts(berth)
    token = github.issuer.mint("acme/shop", "refs/heads/main")
    out = sts.assume_role_with_web_identity(RoleArn=github.role_arn, RoleSessionName="gha-run-1",
                                            WebIdentityToken=token)
    assert not any(k.lower() == "authorization" for k in sts.sent_headers[-1]), sts.sent_headers[-1]

    assert_temporary_credentials(out["Credentials"])
    assumed_arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-run-1"
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{github.role_id}:gha-run-1", "Arn": assumed_arn}
    assert out["SubjectFromWebIdentityToken"] == MAIN_SUB
    assert out["Audience"] == GITHUB_AUDIENCE
    assert out["PackedPolicySize"] == 0

    # The credentials are the role's.
    identity = session_client(berth, "sts", out["Credentials"]).get_caller_identity()
    assert identity["Arn"] == assumed_arn
    assert identity["Account"] == ACCOUNT_ID
    assert identity["UserId"] == f"{github.role_id}:gha-run-1"
    iam = session_client(berth, "iam", out["Credentials"])
    roles = [r["RoleName"] for r in iam.get_paginator("list_roles").paginate().build_full_result()["Roles"]]
    assert github.role_name in roles
    with pytest.raises(ClientError) as excinfo:
        iam.list_users()
    code, status, message = error_of(excinfo)
    assert (code, status) == ("AccessDenied", 403), excinfo.value.response
    assert message.startswith(f"User: {assumed_arn} is not authorized to perform: iam:ListUsers on resource: "), message
    assert len(message) > len(f"User: {assumed_arn} is not authorized to perform: iam:ListUsers on resource: ")


def test_web_identity_response_names_the_provider_arn(berth, github):
    """AWS answers `Provider` with the IAM OIDC provider's ARN (what EKS and GitHub users see:
    `arn:aws:iam::<acct>:oidc-provider/oidc.eks…`), not the issuer URL."""
    out = assume_web(berth, github, github.issuer.mint())
    assert out["Provider"] == github.provider_arn


def test_es256_token_assumes_the_deploy_role(berth, github):
    token = github.issuer.mint(alg="ES256")
    assert decode_header(token)["alg"] == "ES256"
    out = assume_web(berth, github, token, session="gha-es256")
    assert_temporary_credentials(out["Credentials"])
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-es256"
    assert out["SubjectFromWebIdentityToken"] == MAIN_SUB


def test_duration_seconds_shapes_the_web_identity_session(berth, github):
    out = assume_web(berth, github, github.issuer.mint(), DurationSeconds=900)
    assert_temporary_credentials(out["Credentials"], lifetime=900)
    with pytest.raises(ClientError) as excinfo:
        assume_web(berth, github, github.issuer.mint(), DurationSeconds=7200)  # role's max is 3600
    code, status, _ = error_of(excinfo)
    assert (code, status) == ("ValidationError", 400), excinfo.value.response


def _tampered(issuer: OidcIssuer, alg: str = "RS256") -> str:
    """A feature-branch token whose claims were swapped for main's after signing."""
    header, _, signature = issuer.mint(ref="refs/heads/feature", alg=alg).split(".")
    _, main_claims, _ = issuer.mint(ref="refs/heads/main", alg=alg).split(".")
    return f"{header}.{main_claims}.{signature}"


REFUSED_TOKENS = [
    # (id, mint, code, status, exact message or None)
    ("another-branch", lambda i: i.mint("acme/shop", "refs/heads/feature"), "AccessDenied", 403, WEB_IDENTITY_DENIED),
    ("another-repo", lambda i: i.mint("acme/shop-fork", "refs/heads/main"), "AccessDenied", 403, WEB_IDENTITY_DENIED),
    ("another-owner", lambda i: i.mint("evil/shop", "refs/heads/main"), "AccessDenied", 403, WEB_IDENTITY_DENIED),
    ("pull-request", lambda i: i.mint(claims={"sub": "repo:acme/shop:pull_request"}), "AccessDenied", 403,
     WEB_IDENTITY_DENIED),
    ("wrong-audience", lambda i: i.mint(audience="https://github.com/acme"), "InvalidIdentityToken", 400,
     "Incorrect token audience"),
    ("expired", lambda i: i.mint(expired=True), "ExpiredTokenException", 400, None),
    ("signed-by-another-key", lambda i: i.mint(other_key=True), "InvalidIdentityToken", 400, None),
    ("claims-changed-after-signing", _tampered, "InvalidIdentityToken", 400, None),
    ("es256-claims-changed-after-signing", lambda i: _tampered(i, "ES256"), "InvalidIdentityToken", 400, None),
    ("alg-none", lambda i: i.mint(alg_none=True), "InvalidIdentityToken", 400, None),
    ("not-a-jwt", lambda i: "not-a-jwt-at-all", "InvalidIdentityToken", 400, NOT_A_JWT),
]


@pytest.mark.parametrize("mint,code,status,message", [c[1:] for c in REFUSED_TOKENS],
                         ids=[c[0] for c in REFUSED_TOKENS])
def test_refused_web_identity_tokens(berth, github, mint, code, status, message):
    with pytest.raises(ClientError) as excinfo:
        assume_web(berth, github, mint(github.issuer))
    got_code, got_status, got_message = error_of(excinfo)
    assert (got_code, got_status) == (code, status), excinfo.value.response
    assert got_message, excinfo.value.response
    if message is not None:
        assert got_message == message, excinfo.value.response
    if code == "ExpiredTokenException":
        assert got_message.startswith("Token expired: current date/time "), got_message


def test_trust_policy_checks_the_audience_condition(berth, github):
    """A token for another client id of the provider passes verification, but the trust policy's
    `<host>:aud` StringEquals `sts.amazonaws.com` refuses it."""
    iam = berth.client("iam")
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=github.provider_arn, ClientID="deploy-bot")
    try:
        with pytest.raises(ClientError) as excinfo:
            assume_web(berth, github, github.issuer.mint(audience="deploy-bot"))
        assert error_of(excinfo) == ("AccessDenied", 403, WEB_IDENTITY_DENIED)
    finally:
        iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=github.provider_arn,
                                                           ClientID="deploy-bot")
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=github.provider_arn)["ClientIDList"] == [GITHUB_AUDIENCE]


def test_token_from_an_issuer_without_a_provider_is_refused(berth, github):
    with OidcIssuer() as stranger:
        with pytest.raises(ClientError) as excinfo:
            assume_web(berth, github, stranger.mint())
        assert error_of(excinfo) == ("InvalidIdentityToken", 400,
                                     f"No OpenIDConnect provider found in your account for {stranger.url}")
        assert stranger.requests == [], "berth fetched keys from an issuer that is not registered"


def test_cli_assumes_the_deploy_role_and_uses_its_credentials(berth, github):
    env = anonymous_cli_env(berth)
    result = run_aws_cli(["sts", "assume-role-with-web-identity", "--role-arn", github.role_arn,
                          "--role-session-name", "gha-cli", "--web-identity-token", github.issuer.mint()], env)
    out = result.json()
    assert_temporary_credentials(out["Credentials"])
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-cli"
    assert out["SubjectFromWebIdentityToken"] == MAIN_SUB
    assert out["Audience"] == GITHUB_AUDIENCE

    as_role = session_cli_env(berth, out["Credentials"])
    identity = run_aws_cli(["sts", "get-caller-identity"], as_role).json()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-cli"
    denied = run_aws_cli(["iam", "list-users"], as_role)
    assert denied.returncode == CLI_SERVICE_ERROR_EXIT, denied
    assert "An error occurred (AccessDenied) when calling the ListUsers operation" in denied.stderr, denied.stderr
    assert (f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-cli is not authorized to perform: "
            f"iam:ListUsers on resource: ") in denied.stderr, denied.stderr

    refused = run_aws_cli(["sts", "assume-role-with-web-identity", "--role-arn", github.role_arn,
                           "--role-session-name", "gha-cli", "--web-identity-token",
                           github.issuer.mint(ref="refs/heads/feature")], env)
    assert refused.returncode == CLI_SERVICE_ERROR_EXIT, refused
    # CLI v1 prints "... operation (reached max retries: 0): <message>".
    assert "An error occurred (AccessDenied) when calling the AssumeRoleWithWebIdentity operation" in refused.stderr
    assert refused.stderr.rstrip().endswith(f": {WEB_IDENTITY_DENIED}"), refused.stderr


# --------------------------------------------------------------------------------------------
# 2. Issuers that cannot be reached


def _register(berth, issuer: OidcIssuer) -> str:
    return berth.client("iam").create_open_id_connect_provider(
        Url=issuer.url, ClientIDList=[GITHUB_AUDIENCE], ThumbprintList=[THUMBPRINT])["OpenIDConnectProviderArn"]


def test_unreachable_issuer_is_an_idp_communication_error(berth, github):
    gone = OidcIssuer().start()
    _register(berth, gone)
    token = gone.mint()
    gone.stop()  # registered, never fetched, now refusing connections
    started = time.monotonic()
    with pytest.raises(ClientError) as excinfo:
        assume_web(berth, github, token)
    elapsed = time.monotonic() - started
    code, status, message = error_of(excinfo)
    assert (code, status) == ("IDPCommunicationError", 400), excinfo.value.response
    assert message, excinfo.value.response
    assert elapsed < IDP_ANSWER_BOUND_S, f"answered after {elapsed:.1f} s"


def test_silent_issuer_is_an_idp_communication_error_without_a_hang(berth, github):
    with OidcIssuer(silent=True) as silent:
        _register(berth, silent)
        started = time.monotonic()
        with pytest.raises(ClientError) as excinfo:
            assume_web(berth, github, silent.mint())
        elapsed = time.monotonic() - started
        code, status, _ = error_of(excinfo)
        assert (code, status) == ("IDPCommunicationError", 400), excinfo.value.response
        assert elapsed < IDP_ANSWER_BOUND_S, f"answered after {elapsed:.1f} s"
        assert ("GET", "/.well-known/openid-configuration") in silent.requests


# --------------------------------------------------------------------------------------------
# 3. The IAM API through botocore


def test_role_lifecycle(berth):
    iam = berth.client("iam")
    name = unique("app-role")
    trust = trust_account()
    created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                              Description="an application role", MaxSessionDuration=7200)["Role"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    assert created["RoleId"].startswith("AROA")
    assert isinstance(created["CreateDate"], datetime.datetime)

    role = iam.get_role(RoleName=name)["Role"]
    assert role["RoleName"] == name
    assert role["RoleId"] == created["RoleId"]
    assert role["Path"] == "/"
    assert role["MaxSessionDuration"] == 7200
    assert role["Description"] == "an application role"
    assert role["AssumeRolePolicyDocument"] == trust  # botocore decodes the URL-encoded JSON

    with pytest.raises(ClientError) as excinfo:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    assert error_of(excinfo) == ("EntityAlreadyExists", 409, f"Role with name {name} already exists.")

    tasks = policy({"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"})
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(tasks))
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == tasks

    # Attached managed policies block the deletion.
    iam.attach_role_policy(RoleName=name, PolicyArn=ADMINISTRATOR_ACCESS)
    with pytest.raises(ClientError) as excinfo:
        iam.delete_role(RoleName=name)
    assert error_of(excinfo) == ("DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_role_policy(RoleName=name, PolicyArn=ADMINISTRATOR_ACCESS)

    iam.delete_role(RoleName=name)
    with pytest.raises(ClientError) as excinfo:
        iam.get_role(RoleName=name)
    assert error_of(excinfo) == ("NoSuchEntity", 404, f"The role with name {name} cannot be found.")


def test_delete_role_with_an_inline_policy_is_a_delete_conflict(berth):
    """AWS words the inline case differently from the attached one."""
    iam = berth.client("iam")
    name = unique("inline-role")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_account()))
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy(allow("ecs:ListClusters"))))
    with pytest.raises(ClientError) as excinfo:
        iam.delete_role(RoleName=name)
    try:
        assert error_of(excinfo) == ("DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    finally:
        iam.delete_role_policy(RoleName=name, PolicyName="p")
        iam.delete_role(RoleName=name)


def test_list_roles_paginates(berth):
    iam = berth.client("iam")
    path = f"/{unique('pages')}/"
    names = sorted(unique("paged") for _ in range(3))
    for name in names:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust_account()))

    first = iam.list_roles(PathPrefix=path, MaxItems=2)
    assert first["IsTruncated"] is True and first["Marker"], first
    assert len(first["Roles"]) == 2
    second = iam.list_roles(PathPrefix=path, MaxItems=2, Marker=first["Marker"])
    assert second["IsTruncated"] is False and "Marker" not in second, second
    assert sorted(r["RoleName"] for r in first["Roles"] + second["Roles"]) == names

    pages = list(iam.get_paginator("list_roles").paginate(PathPrefix=path, PaginationConfig={"PageSize": 1}))
    assert [len(p["Roles"]) for p in pages] == [1, 1, 1], pages
    assert sorted(r["RoleName"] for p in pages for r in p["Roles"]) == names
    assert all(r["Path"] == path and r["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role{path}{r['RoleName']}"
               for p in pages for r in p["Roles"])

    everything = iam.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": 2}).build_full_result()
    assert set(names) <= {r["RoleName"] for r in everything["Roles"]}
    for name in names:
        iam.delete_role(RoleName=name)


def test_managed_policy_versions(berth):
    iam = berth.client("iam")
    name = unique("deploy-policy")
    v1 = policy(allow("ecs:UpdateService", f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/prod/*"))
    created = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(v1), Description="deploys prod")["Policy"]
    arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}"
    assert created["Arn"] == arn
    assert created["PolicyId"].startswith("ANPA")
    assert created["DefaultVersionId"] == "v1"
    assert created["AttachmentCount"] == 0
    assert created["IsAttachable"] is True
    assert created["Path"] == "/"

    got = iam.get_policy(PolicyArn=arn)["Policy"]
    assert (got["PolicyName"], got["PolicyId"], got["DefaultVersionId"]) == (name, created["PolicyId"], "v1")
    assert got["Description"] == "deploys prod"
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert version["Document"] == v1  # decoded to a dict by botocore
    assert version["VersionId"] == "v1" and version["IsDefaultVersion"] is True

    with pytest.raises(ClientError) as excinfo:
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(v1))
    assert error_of(excinfo)[:2] == ("EntityAlreadyExists", 409)

    v2 = policy(allow(["ecs:UpdateService", "ecs:DescribeServices"], "*"))
    made = iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(v2), SetAsDefault=True)["PolicyVersion"]
    assert made["VersionId"] == "v2" and made["IsDefaultVersion"] is True
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]["Document"] == v2
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert sorted((v["VersionId"], v["IsDefaultVersion"]) for v in versions) == [("v1", False), ("v2", True)]
    # Back to v1 and forth to v2: the default moves, the documents stay.
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v1"
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["IsDefaultVersion"] is True
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"

    with pytest.raises(ClientError) as excinfo:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    assert error_of(excinfo) == ("DeleteConflict", 409, "Cannot delete the default version of a policy.")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v2"]
    with pytest.raises(ClientError) as excinfo:
        iam.get_policy_version(PolicyArn=arn, VersionId="v1")
    assert error_of(excinfo)[:2] == ("NoSuchEntity", 404)

    local = iam.get_paginator("list_policies").paginate(Scope="Local", PaginationConfig={"PageSize": 1})
    local_arns = [p["Arn"] for p in local.build_full_result()["Policies"]]
    assert arn in local_arns
    assert not any(a.startswith("arn:aws:iam::aws:") for a in local_arns), local_arns
    aws = iam.get_paginator("list_policies").paginate(Scope="AWS").build_full_result()
    aws_arns = [p["Arn"] for p in aws["Policies"]]
    assert ADMINISTRATOR_ACCESS in aws_arns and arn not in aws_arns

    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError) as excinfo:
        iam.get_policy(PolicyArn=arn)
    assert error_of(excinfo)[:2] == ("NoSuchEntity", 404)


def test_attach_and_detach_managed_policies(berth):
    iam = berth.client("iam")
    role, user = unique("attach-role"), unique("attach-user")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust_account()))
    iam.create_user(UserName=user)
    name = unique("read-logs")
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(policy(allow("logs:GetLogEvents"))))["Policy"]["Arn"]

    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    iam.attach_role_policy(RoleName=role, PolicyArn=ADMINISTRATOR_ACCESS)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert sorted(attached, key=lambda p: p["PolicyName"]) == sorted(
        [{"PolicyName": name, "PolicyArn": arn}, {"PolicyName": "AdministratorAccess", "PolicyArn": ADMINISTRATOR_ACCESS}],
        key=lambda p: p["PolicyName"])
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == [{"PolicyName": name, "PolicyArn": arn}]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 2
    admin = iam.get_policy(PolicyArn=ADMINISTRATOR_ACCESS)["Policy"]
    assert (admin["PolicyName"], admin["PolicyId"], admin["IsAttachable"]) == ("AdministratorAccess", "ANPAIWMBCKSKIEE64ZLYK", True)

    with pytest.raises(ClientError) as excinfo:
        iam.delete_policy(PolicyArn=arn)
    assert error_of(excinfo) == ("DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    missing = f"arn:aws:iam::{ACCOUNT_ID}:policy/{unique('missing')}"
    with pytest.raises(ClientError) as excinfo:
        iam.attach_role_policy(RoleName=role, PolicyArn=missing)
    assert error_of(excinfo) == ("NoSuchEntity", 404, f"Policy {missing} does not exist or is not attachable.")

    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.detach_role_policy(RoleName=role, PolicyArn=ADMINISTRATOR_ACCESS)
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == []
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 0
    with pytest.raises(ClientError) as excinfo:
        iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    assert error_of(excinfo)[:2] == ("NoSuchEntity", 404)
    iam.delete_policy(PolicyArn=arn)
    iam.delete_role(RoleName=role)
    iam.delete_user(UserName=user)


def test_inline_role_and_user_policies(berth):
    iam = berth.client("iam")
    role, user = unique("inline-role"), unique("inline-user")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust_account()))
    iam.create_user(UserName=user)
    doc = policy(allow(["secretsmanager:GetSecretValue"], f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:app/*"))

    iam.put_role_policy(RoleName=role, PolicyName="secrets", PolicyDocument=json.dumps(doc))
    iam.put_role_policy(RoleName=role, PolicyName="logs", PolicyDocument=json.dumps(policy(allow("logs:*"))))
    got = iam.get_role_policy(RoleName=role, PolicyName="secrets")
    assert (got["RoleName"], got["PolicyName"], got["PolicyDocument"]) == (role, "secrets", doc)
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == ["logs", "secrets"]
    iam.delete_role_policy(RoleName=role, PolicyName="secrets")
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["logs"]
    with pytest.raises(ClientError) as excinfo:
        iam.get_role_policy(RoleName=role, PolicyName="secrets")
    assert error_of(excinfo) == ("NoSuchEntity", 404, "The role policy with name secrets cannot be found.")

    iam.put_user_policy(UserName=user, PolicyName="secrets", PolicyDocument=json.dumps(doc))
    got = iam.get_user_policy(UserName=user, PolicyName="secrets")
    assert (got["UserName"], got["PolicyName"], got["PolicyDocument"]) == (user, "secrets", doc)
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["secrets"]
    iam.delete_user_policy(UserName=user, PolicyName="secrets")
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
    with pytest.raises(ClientError) as excinfo:
        iam.delete_user_policy(UserName=user, PolicyName="secrets")
    assert error_of(excinfo) == ("NoSuchEntity", 404, "The user policy with name secrets cannot be found.")

    iam.delete_role_policy(RoleName=role, PolicyName="logs")
    iam.delete_role(RoleName=role)
    iam.delete_user(UserName=user)


_STATEMENT_WITH_PRINCIPAL = policy({**allow("s3:GetObject"), "Principal": {"AWS": "*"}})
MALFORMED = [
    # (id, document text, exact message or None)
    ("not-json", "{\"Version\": \"2012-10-17\", \"Statement\": [", "Syntax errors in policy."),
    ("principal-in-identity-policy", json.dumps(_STATEMENT_WITH_PRINCIPAL), "Policy document should not specify a principal."),
    ("no-effect", json.dumps(policy({"Action": "s3:GetObject", "Resource": "*"})), None),
    ("bad-effect", json.dumps(policy({**allow("s3:GetObject"), "Effect": "Perhaps"})), None),
    ("no-statement", json.dumps({"Version": "2012-10-17"}), None),
]


@pytest.mark.parametrize("document,message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_identity_policies(berth, document, message):
    iam = berth.client("iam")
    role = unique("malformed")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust_account()))
    try:
        calls = [
            lambda: iam.create_policy(PolicyName=unique("bad"), PolicyDocument=document),
            lambda: iam.put_role_policy(RoleName=role, PolicyName="bad", PolicyDocument=document),
        ]
        for call in calls:
            with pytest.raises(ClientError) as excinfo:
                call()
            code, status, got = error_of(excinfo)
            assert (code, status) == ("MalformedPolicyDocument", 400), excinfo.value.response
            assert got, excinfo.value.response
            if message is not None:
                assert got == message, excinfo.value.response
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    finally:
        iam.delete_role(RoleName=role)


def test_malformed_trust_policies(berth):
    iam = berth.client("iam")
    name = unique("bad-trust")
    no_principal = policy({"Effect": "Allow", "Action": "sts:AssumeRole"})
    for document in ["not json", json.dumps(no_principal)]:
        with pytest.raises(ClientError) as excinfo:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)
        assert error_of(excinfo)[:2] == ("MalformedPolicyDocument", 400), excinfo.value.response
    with pytest.raises(ClientError):
        iam.get_role(RoleName=name)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_account()))
    with pytest.raises(ClientError) as excinfo:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(no_principal))
    assert error_of(excinfo)[:2] == ("MalformedPolicyDocument", 400), excinfo.value.response
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == trust_account()
    iam.delete_role(RoleName=name)


def test_access_key_lifecycle(berth):
    iam = berth.client("iam")
    user = unique("key-user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert key["UserName"] == user and key["Status"] == "Active"
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    assert len(key["SecretAccessKey"]) == 40
    listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [(k["UserName"], k["AccessKeyId"], k["Status"]) for k in listed] == [(user, key["AccessKeyId"], "Active")]
    assert "SecretAccessKey" not in listed[0]

    def caller(k=key):
        # A fresh client each time: nothing cached between the key's states.
        session = boto3.session.Session(aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"],
                                        region_name=REGION)
        return session.client("sts", endpoint_url=berth.endpoint, config=Config(retries={"total_max_attempts": 1}))

    assert caller().get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{user}"

    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Inactive"
    with pytest.raises(ClientError) as excinfo:
        caller().get_caller_identity()
    assert error_of(excinfo) == ("InvalidClientTokenId", 403, INVALID_CLIENT_TOKEN)

    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Active")
    assert caller().get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{user}"

    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []
    with pytest.raises(ClientError) as excinfo:
        caller().get_caller_identity()
    assert error_of(excinfo) == ("InvalidClientTokenId", 403, INVALID_CLIENT_TOKEN)
    with pytest.raises(ClientError) as excinfo:
        iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    assert error_of(excinfo) == ("NoSuchEntity", 404, f"The Access Key with id {key['AccessKeyId']} cannot be found.")
    iam.delete_user(UserName=user)


def test_oidc_provider_api(berth):
    iam = berth.client("iam")
    host = f"{unique('idp')}.example.com"
    url = f"https://{host}"
    arn = iam.create_open_id_connect_provider(Url=url, ClientIDList=[GITHUB_AUDIENCE],
                                              ThumbprintList=[THUMBPRINT])["OpenIDConnectProviderArn"]
    assert arn == f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == host
    assert got["ClientIDList"] == [GITHUB_AUDIENCE]
    assert got["ThumbprintList"] == [THUMBPRINT]
    assert isinstance(got["CreateDate"], datetime.datetime)

    with pytest.raises(ClientError) as excinfo:
        iam.create_open_id_connect_provider(Url=url, ClientIDList=[GITHUB_AUDIENCE], ThumbprintList=[THUMBPRINT])
    assert error_of(excinfo)[:2] == ("EntityAlreadyExists", 409)

    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="my-app")
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="my-app")  # idempotent
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"] == [GITHUB_AUDIENCE, "my-app"]
    assert {"Arn": arn} in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]

    rotated = "b" * 40
    iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn, ThumbprintList=[rotated])
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ThumbprintList"] == [rotated]

    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert {"Arn": arn} not in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    with pytest.raises(ClientError) as excinfo:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert error_of(excinfo)[:2] == ("NoSuchEntity", 404)


def test_denied_list_users_names_the_resource_as_aws_does(berth, github):
    """AWS evaluates and reports ListUsers on `arn:aws:iam::<acct>:user/<PathPrefix>` (its message reads
    `... iam:ListUsers on resource: arn:aws:iam::123456789012:user/`), not on `*`."""
    out = assume_web(berth, github, github.issuer.mint(), session="gha-resource")
    with pytest.raises(ClientError) as excinfo:
        session_client(berth, "iam", out["Credentials"]).list_users()
    assumed_arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{github.role_name}/gha-resource"
    code, status, message = error_of(excinfo)
    assert (code, status) == ("AccessDenied", 403)
    assert message.startswith(f"User: {assumed_arn} is not authorized to perform: iam:ListUsers "
                              f"on resource: arn:aws:iam::{ACCOUNT_ID}:user/"), message


def test_list_users_allowed_on_the_user_path_resource(berth):
    """A policy scoping iam:ListUsers to `arn:aws:iam::<acct>:user/*` (the resource AWS documents for
    ListUsers) lets the caller list users."""
    iam = berth.client("iam")
    user = unique("lister")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="list", PolicyDocument=json.dumps(
        policy(allow("iam:ListUsers", f"arn:aws:iam::{ACCOUNT_ID}:user/*"))))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    try:
        users = berth.client("iam", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"]).list_users()
        assert user in [u["UserName"] for u in users["Users"]]
    finally:
        iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
        iam.delete_user_policy(UserName=user, PolicyName="list")
        iam.delete_user(UserName=user)


# --------------------------------------------------------------------------------------------
# 4. AssumeRole with a user's key


@dataclass
class AssumeSetup:
    user: str
    key: dict
    role_name: str
    role_arn: str


@pytest.fixture
def assume_setup(berth):
    iam = berth.client("iam")
    user, role = unique("pipeline"), unique("deployer")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust_account()),
                               MaxSessionDuration=3600)["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="ecs", PolicyDocument=json.dumps(policy(allow("iam:ListRoles"))))
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="assume",
                        PolicyDocument=json.dumps(policy(allow("sts:AssumeRole", role_arn))))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    yield AssumeSetup(user, key, role, role_arn)
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    for name in iam.list_user_policies(UserName=user)["PolicyNames"]:
        iam.delete_user_policy(UserName=user, PolicyName=name)
    iam.delete_user(UserName=user)
    iam.delete_role_policy(RoleName=role, PolicyName="ecs")
    iam.delete_role(RoleName=role)


def _user_sts(berth, setup: AssumeSetup):
    return berth.client("sts", access_key=setup.key["AccessKeyId"], secret_key=setup.key["SecretAccessKey"])


def test_assume_role_with_a_user_key_then_an_explicit_deny(berth, assume_setup):
    sts = _user_sts(berth, assume_setup)
    out = sts.assume_role(RoleArn=assume_setup.role_arn, RoleSessionName="release-42")
    assert_temporary_credentials(out["Credentials"])
    assumed_arn = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{assume_setup.role_name}/release-42"
    assert out["AssumedRoleUser"]["Arn"] == assumed_arn
    assert out["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":release-42")
    assert session_client(berth, "sts", out["Credentials"]).get_caller_identity()["Arn"] == assumed_arn
    session_client(berth, "iam", out["Credentials"]).list_roles(MaxItems=1)

    # An explicit deny on the user wins over its allow.
    berth.client("iam").put_user_policy(
        UserName=assume_setup.user, PolicyName="deny-assume",
        PolicyDocument=json.dumps(policy({"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"})))
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(RoleArn=assume_setup.role_arn, RoleSessionName="release-43")
    code, status, message = error_of(excinfo)
    assert (code, status) == ("AccessDenied", 403), excinfo.value.response
    assert message.startswith(f"User: arn:aws:iam::{ACCOUNT_ID}:user/{assume_setup.user} is not authorized to "
                              f"perform: sts:AssumeRole on resource: {assume_setup.role_arn}"), message


def test_assume_role_duration_above_the_role_maximum(berth, assume_setup):
    sts = _user_sts(berth, assume_setup)
    out = sts.assume_role(RoleArn=assume_setup.role_arn, RoleSessionName="short", DurationSeconds=900)
    assert_temporary_credentials(out["Credentials"], lifetime=900)
    with pytest.raises(ClientError) as excinfo:
        sts.assume_role(RoleArn=assume_setup.role_arn, RoleSessionName="long", DurationSeconds=3601)
    code, status, message = error_of(excinfo)
    assert (code, status) == ("ValidationError", 400), excinfo.value.response
    assert message == DURATION_ABOVE_MAX, message


def test_assume_role_without_permission_is_denied(berth, assume_setup):
    iam = berth.client("iam")
    iam.delete_user_policy(UserName=assume_setup.user, PolicyName="assume")
    with pytest.raises(ClientError) as excinfo:
        _user_sts(berth, assume_setup).assume_role(RoleArn=assume_setup.role_arn, RoleSessionName="nope")
    code, status, message = error_of(excinfo)
    assert (code, status) == ("AccessDenied", 403), excinfo.value.response
    assert message.startswith(f"User: arn:aws:iam::{ACCOUNT_ID}:user/{assume_setup.user} is not authorized to "
                              f"perform: sts:AssumeRole on resource: {assume_setup.role_arn}"), message
