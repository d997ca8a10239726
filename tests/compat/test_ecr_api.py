"""The ECR API with boto3 and the aws CLI: every operation berth serves, with botocore parsing the
answers (timestamps become datetimes, blobs are base64-decoded, error codes become ClientError).

Images are pushed through the API itself (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload,
then PutImage of a Docker schema 2 manifest), so these tests need no docker.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from berthcompat import ACCOUNT_ID, REGION, http_request

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "description": "expire untagged images after two weeks",
    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
    "action": {"type": "expire"}}]})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def push_layer(ecr, repo: str, data: bytes, part: int = 1 << 20) -> str:
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    assert upload["partSize"] == 10 * 1024 * 1024
    first = 0
    for i in range(0, len(data), part):
        chunk = data[i:i + part]
        last = first + len(chunk) - 1
        out = ecr.upload_layer_part(repositoryName=repo, uploadId=upload["uploadId"], partFirstByte=first,
                                    partLastByte=last, layerPartBlob=chunk)
        assert out["lastByteReceived"] == last
        first = last + 1
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload["uploadId"],
                                     layerDigests=[digest_of(data)])
    assert done["layerDigest"] == digest_of(data)
    assert done["registryId"] == ACCOUNT_ID
    return done["layerDigest"]


def manifest_for(config: bytes, layers: list[bytes]) -> str:
    return json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": DOCKER_LAYER, "size": len(l), "digest": digest_of(l)} for l in layers],
    })


def push_image(ecr, repo: str, layer: bytes, tag: str | None) -> tuple[str, str]:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]}}).encode()
    push_layer(ecr, repo, config)
    push_layer(ecr, repo, layer)
    manifest = manifest_for(config, [layer])
    kw = {"imageTag": tag} if tag else {}
    image = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageManifestMediaType=DOCKER_MANIFEST,
                          **kw)["image"]
    assert image["imageId"]["imageDigest"] == digest_of(manifest.encode())
    assert image["imageManifestMediaType"] == DOCKER_MANIFEST
    assert image["repositoryName"] == repo
    return manifest, image["imageId"]["imageDigest"]


def test_ecr_api_repositories(berth):
    ecr = berth.client("ecr")
    name = unique("team/app")
    repo = ecr.create_repository(
        repositoryName=name, imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/berth"},
        tags=[{"Key": "team", "Value": "platform"}])["repository"]
    assert repo["repositoryName"] == name
    assert repo["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{name}"
    assert repo["registryId"] == ACCOUNT_ID
    assert repo["repositoryUri"] == f"localhost:{berth.port}/{name}"
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": "alias/berth"}
    assert isinstance(repo["createdAt"], datetime.datetime)
    age = datetime.datetime.now(datetime.timezone.utc) - repo["createdAt"]
    assert abs(age.total_seconds()) < 120

    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=name)
    assert code_of(e) == "RepositoryAlreadyExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for mutability in ("IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"):
        # Exclusion filters are required with these settings...
        with pytest.raises(ClientError) as e:
            ecr.create_repository(repositoryName=unique("excl"), imageTagMutability=mutability)
        assert code_of(e) == "InvalidParameterException"
        assert mutability in e.value.response["Error"]["Message"]
    # ... and with them the repository is made and described as botocore models it.
    filters = [{"filterType": "WILDCARD", "filter": "latest"}]
    excl = ecr.create_repository(repositoryName=unique("excl"), imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                                 imageTagMutabilityExclusionFilters=filters)["repository"]
    assert excl["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert excl["imageTagMutabilityExclusionFilters"] == filters
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=unique("enc"),
                              encryptionConfiguration={"encryptionType": "AES256", "kmsKey": "k"})
    assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=unique("tags"),
                              tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert code_of(e) == "TooManyTagsException"
    with pytest.raises(ClientError) as e:
        ecr.create_repository(repositoryName=unique("tags"), tags=[{"Key": "k" * 129, "Value": "v"}])
    assert code_of(e) == "InvalidTagParameterException"

    # Described by name; a missing name fails the call.
    got = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert [r["repositoryName"] for r in got] == [name]
    with pytest.raises(ClientError) as e:
        ecr.describe_repositories(repositoryNames=[name, unique("missing")])
    assert code_of(e) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.describe_repositories(nextToken="not-a-token")
    assert code_of(e) == "InvalidParameterException"

    # The paginator walks every repository, a page of 2 at a time.
    prefix = unique("page")
    made = [ecr.create_repository(repositoryName=f"{prefix}/r{i}")["repository"]["repositoryName"] for i in range(5)]
    pages = list(ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2}))
    assert all(len(p["repositories"]) <= 2 for p in pages)
    names = [r["repositoryName"] for p in pages for r in p["repositories"]]
    assert len(names) == len(set(names))
    assert set(made) <= set(names) and name in names

    # Settings.
    out = ecr.put_image_tag_mutability(repositoryName=made[0], imageTagMutability="IMMUTABLE")
    assert (out["repositoryName"], out["imageTagMutability"], out["registryId"]) == (made[0], "IMMUTABLE", ACCOUNT_ID)
    out = ecr.put_image_scanning_configuration(repositoryName=made[0],
                                               imageScanningConfiguration={"scanOnPush": True})
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    r0 = ecr.describe_repositories(repositoryNames=[made[0]])["repositories"][0]
    assert r0["imageTagMutability"] == "IMMUTABLE" and r0["imageScanningConfiguration"]["scanOnPush"] is True

    # A repository with an image is deleted only with force.
    push_image(ecr, made[1], b"a layer", "v1")
    with pytest.raises(ClientError) as e:
        ecr.delete_repository(repositoryName=made[1])
    assert code_of(e) == "RepositoryNotEmptyException"
    assert ecr.delete_repository(repositoryName=made[1], force=True)["repository"]["repositoryName"] == made[1]
    with pytest.raises(ClientError) as e:
        ecr.delete_repository(repositoryName=made[1])
    assert code_of(e) == "RepositoryNotFoundException"


def test_ecr_api_layer_uploads(berth):
    ecr = berth.client("ecr")
    repo = unique("layers")
    ecr.create_repository(repositoryName=repo)
    data = bytes(range(256)) * 40
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    uid = upload["uploadId"]
    with pytest.raises(ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest_of(data)])
    assert code_of(e) == "EmptyUploadException"
    ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0, partLastByte=4095,
                          layerPartBlob=data[:4096])
    # A part that does not follow on: botocore parses the exception's members.
    with pytest.raises(ClientError) as e:
        ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=100, partLastByte=199,
                              layerPartBlob=data[100:200])
    assert code_of(e) == "InvalidLayerPartException"
    assert e.value.response["lastValidByteReceived"] == 4095
    assert e.value.response["uploadId"] == uid
    assert e.value.response["repositoryName"] == repo
    with pytest.raises(ClientError) as e:
        ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=4096, partLastByte=4096,
                              layerPartBlob=data[4096:])
    assert code_of(e) == "InvalidLayerPartException"
    out = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=4096,
                                partLastByte=len(data) - 1, layerPartBlob=data[4096:])
    assert out["lastByteReceived"] == len(data) - 1
    with pytest.raises(ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest_of(b"other bytes")])
    assert code_of(e) == "InvalidLayerException"
    with pytest.raises(ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest_of(data)])
    assert code_of(e) == "UploadNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest_of(data))
    assert code_of(e) == "LayersNotFoundException"

    digest = push_layer(ecr, repo, data, part=3000)
    check = ecr.batch_check_layer_availability(repositoryName=repo,
                                               layerDigests=[digest, digest_of(b"absent"), "sha256:xyz"])
    assert check["layers"] == [
        {"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": len(data)},
    ]
    assert [(f["layerDigest"], f["failureCode"]) for f in check["failures"]] == [
        (digest_of(b"absent"), "MissingLayerDigest"), ("sha256:xyz", "InvalidLayerDigest")]
    # Pushing it again is verified, then reported as already there.
    again = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=again, partFirstByte=0, partLastByte=len(data) - 1,
                          layerPartBlob=data)
    with pytest.raises(ClientError) as e:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=again, layerDigests=[digest])
    assert code_of(e) == "LayerAlreadyExistsException"

    # The download URL works without credentials.
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
    assert url["layerDigest"] == digest
    assert url["downloadUrl"].startswith(f"http://localhost:{berth.port}/v2/{repo}/blobs/{digest}?")
    resp = http_request("GET", url["downloadUrl"].replace("localhost", "127.0.0.1", 1))
    assert resp.status == 200, resp
    assert resp.body == data


def test_ecr_api_images(berth):
    ecr = berth.client("ecr")
    repo = unique("images")
    ecr.create_repository(repositoryName=repo)
    m1, d1 = push_image(ecr, repo, b"first", "v1")
    ecr.put_image(repositoryName=repo, imageManifest=m1, imageTag="latest")
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=repo, imageManifest=m1, imageTag="v1")
    assert code_of(e) == "ImageAlreadyExistsException"
    assert e.value.response["Error"]["Message"] == (
        f"Image with digest '{d1}' and tag 'v1' already exists in the repository with name '{repo}' "
        f"in registry with id '{ACCOUNT_ID}'")
    _, d2 = push_image(ecr, repo, b"second", None)
    m3, d3 = push_image(ecr, repo, b"third", "v3")
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=repo, imageManifest=m3, imageDigest=d1)
    assert code_of(e) == "ImageDigestDoesNotMatchException"
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=repo, imageManifest=manifest_for(b"cfg", [b"missing layer"]))
    assert code_of(e) == "LayersNotFoundException"

    ids = [i for p in ecr.get_paginator("list_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 1})
           for i in p["imageIds"]]
    key = lambda i: (i["imageDigest"], i.get("imageTag", ""))  # noqa: E731
    assert sorted(ids, key=key) == sorted([
        {"imageDigest": d1, "imageTag": "v1"}, {"imageDigest": d1, "imageTag": "latest"},
        {"imageDigest": d2}, {"imageDigest": d3, "imageTag": "v3"}], key=key)
    assert ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"] == [{"imageDigest": d2}]

    details = {d["imageDigest"]: d for p in ecr.get_paginator("describe_images").paginate(repositoryName=repo)
               for d in p["imageDetails"]}
    assert set(details) == {d1, d2, d3}
    one = details[d1]
    assert one["imageTags"] == ["latest", "v1"]
    assert one["registryId"] == ACCOUNT_ID and one["repositoryName"] == repo
    assert one["imageManifestMediaType"] == DOCKER_MANIFEST
    assert one["artifactMediaType"] == DOCKER_CONFIG
    assert isinstance(one["imagePushedAt"], datetime.datetime)
    assert one["imageSizeInBytes"] > len(b"first")
    assert "lastRecordedPullTime" not in one
    assert "imageTags" not in details[d2]
    with pytest.raises(ClientError) as e:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "nope"}])
    assert code_of(e) == "ImageNotFoundException"

    got = ecr.batch_get_image(repositoryName=repo, imageIds=[
        {"imageTag": "v1"}, {"imageDigest": d3}, {"imageTag": "nope"}, {"imageTag": "v1", "imageDigest": d3}])
    assert [i["imageId"] for i in got["images"]] == [{"imageDigest": d1, "imageTag": "v1"}, {"imageDigest": d3}]
    assert got["images"][0]["imageManifest"] == m1
    assert got["images"][1]["imageManifest"] == m3
    assert [(f["failureCode"], f["imageId"]) for f in got["failures"]] == [
        ("ImageNotFound", {"imageTag": "nope"}),
        ("ImageTagDoesNotMatchDigest", {"imageTag": "v1", "imageDigest": d3})]
    refused = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}],
                                  acceptedMediaTypes=[OCI_MANIFEST])
    assert refused["images"] == []
    assert refused["failures"][0]["failureCode"] == "UnsupportedImageType"
    pulled = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": d1}])["imageDetails"][0]
    assert isinstance(pulled["lastRecordedPullTime"], datetime.datetime)

    index = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "size": len(m3), "digest": d3,
         "platform": {"architecture": "amd64", "os": "linux"}}]})
    d_index = ecr.put_image(repositoryName=repo, imageManifest=index, imageManifestMediaType=DOCKER_LIST,
                            imageTag="multi")["image"]["imageId"]["imageDigest"]
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[
        {"imageTag": "latest"}, {"imageDigest": d3}, {"imageTag": "nope"}])
    assert deleted["imageIds"] == [{"imageDigest": d1, "imageTag": "latest"}]
    assert [f["failureCode"] for f in deleted["failures"]] == ["ImageReferencedByManifestList", "ImageNotFound"]
    deleted = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": d_index}, {"imageDigest": d3}])
    assert deleted["imageIds"] == [{"imageDigest": d_index, "imageTag": "multi"}, {"imageDigest": d3, "imageTag": "v3"}]
    assert deleted["failures"] == []
    left = ecr.list_images(repositoryName=repo)["imageIds"]
    assert sorted(left, key=key) == sorted([{"imageDigest": d1, "imageTag": "v1"}, {"imageDigest": d2}], key=key)


def test_ecr_api_immutable_tags(berth):
    ecr = berth.client("ecr")
    repo = unique("fixed")
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    push_image(ecr, repo, b"one", "v1")
    push_layer(ecr, repo, b"{}")
    push_layer(ecr, repo, b"two")
    other = manifest_for(b"{}", [b"two"])
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=repo, imageManifest=other, imageTag="v1")
    assert code_of(e) == "ImageTagAlreadyExistsException"


def test_ecr_api_lifecycle_and_repository_policies_and_tags(berth):
    ecr = berth.client("ecr")
    repo = unique("policies")
    arn = ecr.create_repository(repositoryName=repo)["repository"]["repositoryArn"]

    with pytest.raises(ClientError) as e:
        ecr.get_lifecycle_policy(repositoryName=repo)
    assert code_of(e) == "LifecyclePolicyNotFoundException"
    out = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=LIFECYCLE)
    assert (out["repositoryName"], out["registryId"], out["lifecyclePolicyText"]) == (repo, ACCOUNT_ID, LIFECYCLE)
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == LIFECYCLE
    with pytest.raises(ClientError) as e:
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=LIFECYCLE.replace('"expire"', '"archive"'))
    assert code_of(e) == "InvalidParameterException"
    assert ecr.delete_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == LIFECYCLE
    with pytest.raises(ClientError) as e:
        ecr.delete_lifecycle_policy(repositoryName=repo)
    assert code_of(e) == "LifecyclePolicyNotFoundException"

    with pytest.raises(ClientError) as e:
        ecr.get_repository_policy(repositoryName=repo)
    assert code_of(e) == "RepositoryPolicyNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.set_repository_policy(repositoryName=repo, policyText='{"Statement": [{"Effect": "Allow"}]}')
    assert code_of(e) == "InvalidParameterException"
    assert e.value.response["Error"]["Message"] == (
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "pull", "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}]})
    assert ecr.set_repository_policy(repositoryName=repo, policyText=policy)["policyText"] == policy
    assert ecr.get_repository_policy(repositoryName=repo)["policyText"] == policy
    assert ecr.delete_repository_policy(repositoryName=repo)["policyText"] == policy
    with pytest.raises(ClientError) as e:
        ecr.delete_repository_policy(repositoryName=repo)
    assert code_of(e) == "RepositoryPolicyNotFoundException"

    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}])
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "b", "Value": "3"}])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "3"}]
    ecr.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "3"}]
    with pytest.raises(ClientError) as e:
        ecr.list_tags_for_resource(resourceArn=f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{unique('none')}")
    assert code_of(e) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as e:
        ecr.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    assert code_of(e) == "InvalidParameterException"


def test_ecr_api_user_denied_then_allowed_by_a_repository_policy(berth):
    ecr = berth.client("ecr")
    iam = berth.client("iam")
    repo = unique("shared")
    ecr.create_repository(repositoryName=repo)
    push_image(ecr, repo, b"shared", "v1")
    user = unique("puller")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    theirs = berth.client("ecr", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])

    with pytest.raises(ClientError) as e:
        theirs.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert code_of(e) == "AccessDeniedException"
    assert e.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/{user} is not authorized to perform: ecr:BatchGetImage "
        f"on resource: arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/{repo}")
    ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/{user}"},
         "Action": ["ecr:BatchGetImage", "ecr:DescribeImages"]}]}))
    got = theirs.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert len(got["images"]) == 1
    assert theirs.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["v1"]
    with pytest.raises(ClientError) as e:
        theirs.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert code_of(e) == "AccessDeniedException"


def test_ecr_api_cli_login_password_and_describe_repositories(berth):
    repo = unique("cli")
    berth.client("ecr").create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    pw = berth.aws("ecr", "get-login-password")
    assert pw.returncode == 0, pw.stderr
    password = pw.stdout.strip()
    # The password is what docker login would send; the registry's base check accepts it.
    basic = base64.b64encode(f"AWS:{password}".encode()).decode()
    resp = http_request("GET", f"{berth.endpoint}/v2/", headers={"Authorization": f"Basic {basic}"})
    assert resp.status == 200, resp
    wrong = base64.b64encode(f"AWS:{password}x".encode()).decode()
    assert http_request("GET", f"{berth.endpoint}/v2/", headers={"Authorization": f"Basic {wrong}"}).status == 401

    out = berth.aws("ecr", "describe-repositories", "--repository-names", repo).json()
    [r] = out["repositories"]
    assert r["repositoryName"] == repo
    assert r["imageTagMutability"] == "IMMUTABLE"
    assert r["repositoryUri"] == f"localhost:{berth.port}/{repo}"
    missing = berth.aws("ecr", "describe-repositories", "--repository-names", unique("missing"))
    assert missing.returncode != 0
    assert "RepositoryNotFoundException" in missing.stderr
