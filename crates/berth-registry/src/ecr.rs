//! The ECR API (awsJson 1.1, `AmazonEC2ContainerRegistry_V20150921`), on top of [`Registry`]: the
//! same repositories, images and blobs the OCI data path (`/v2/`) serves, so an image pushed with
//! `docker push` is listed by `DescribeImages` and one put with `PutImage` is pulled by `docker pull`.
//!
//! Shapes, member names and error codes follow botocore's `ecr/2015-09-21/service-2.json`. Every
//! operation is authorized by the gateway as `ecr:<Operation>` on the repository's ARN (`*` for
//! `GetAuthorizationToken` and `DescribeRepositories`; the `resourceArn` member for the tagging
//! operations), with the repository policy evaluated together with the caller's identity policies.
//!
//! Operations:
//! - Repositories: `CreateRepository`, `DescribeRepositories`, `DeleteRepository`,
//!   `PutImageTagMutability`, `PutImageScanningConfiguration`.
//! - Images: `ListImages`, `DescribeImages`, `BatchGetImage`, `BatchDeleteImage`, `PutImage`.
//! - Layers: `BatchCheckLayerAvailability`, `GetDownloadUrlForLayer`, `InitiateLayerUpload`,
//!   `UploadLayerPart`, `CompleteLayerUpload`.
//! - Credentials: `GetAuthorizationToken`.
//! - Policies: `PutLifecyclePolicy`, `GetLifecyclePolicy`, `DeleteLifecyclePolicy`,
//!   `SetRepositoryPolicy`, `GetRepositoryPolicy`, `DeleteRepositoryPolicy`.
//! - Tags: `TagResource`, `UntagResource`, `ListTagsForResource`.
//!
//! Where berth differs from ECR:
//! - One registry: a `registryId` other than berth's account is refused (`InvalidParameterException`
//!   for `CreateRepository` and `GetAuthorizationToken`, `RepositoryNotFoundException` elsewhere).
//! - `imageTagMutability`: all four settings; `imageTagMutabilityExclusionFilters` (WILDCARD, `*`)
//!   name the tags that follow the opposite rule (`IMMUTABLE_WITH_EXCLUSION` + `latest`: every
//!   `:<sha>` is fixed, `:latest` moves).
//! - Encryption: `AES256` and `KMS` (with an optional `kmsKey`) are stored and reported, but blobs
//!   are written as they are and the key is not checked (there is no KMS yet); `KMS_DSSE` is refused.
//! - Scanning: `scanOnPush` is stored and reported; no scan runs, and `DescribeImages` reports no
//!   scan status or findings.
//! - `BatchGetImage` never converts manifests: an image whose media type is not among
//!   `acceptedMediaTypes` is a failure with code `UnsupportedImageType` (not in botocore's enum).
//!   Without `acceptedMediaTypes` every stored media type is accepted.
//! - Layer uploads live in the server's memory and end with a restart (`UploadNotFoundException`);
//!   parts may be of any size (no `LayerPartTooSmallException`). `InvalidLayerPartException` carries
//!   `lastValidByteReceived` (the index of the last byte stored) only once a byte was stored.
//! - `CompleteLayerUpload` verifies the digest before answering `LayerAlreadyExistsException`.
//! - `GetDownloadUrlForLayer` returns a URL on berth's own `/v2/` path, signed for one hour.
//! - Repository policies are checked for their structure (a JSON object whose statements have
//!   `Effect`, `Principal` and `Action`), not by IAM's grammar: a statement IAM cannot read grants
//!   nothing when evaluated.
//! - Images are always `ACTIVE` (no archiving): the `ARCHIVED`/`ACTIVATING` filters match nothing.
//! - `lastRecordedPullTime` is updated at most once an hour per image.
//! - Pagination tokens are opaque strings valid for the same operation (any `maxResults`); lists
//!   are ordered by name (repositories), by digest and tag (`ListImages`) and by digest
//!   (`DescribeImages`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use berth_aws::time::Timestamp;
use berth_aws::{
    AwsError, BoxFuture, CredentialStore, Input, Operation, Output, Protocol, RequestContext, ResourceRule, Service,
    ServiceSpec,
};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::blob_store::{Digest, UploadId};
use crate::error::RegistryError;
use crate::manifest;
use crate::registry::{validate_repository_name, validate_tag, Image, NewRepository, Reference, Registry, Repository};
use crate::registry::{Tag, TagMutability};
use crate::token::{TokenKey, DOWNLOAD_URL_LIFETIME_SECS, TOKEN_LIFETIME_SECS};

/// `arn:aws:ecr:<region>:<account>:repository/<repositoryName>` from the request.
fn repository_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let name = input
        .as_json()
        .and_then(|m| m.get("repositoryName"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "repositoryName"))?;
    Ok(ctx.aws.arn("ecr", &format!("repository/{name}")))
}

/// The tagging operations name their resource by ARN: the `resourceArn` member, as given. A
/// malformed one is refused by the handler once authorization has looked at it.
fn resource_arn_member(_ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    input
        .as_json()
        .and_then(|m| m.get("resourceArn"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "resourceArn"))
}

const REPO: ResourceRule = ResourceRule::Arn(repository_arn);
const RESOURCE_ARN: ResourceRule = ResourceRule::Arn(resource_arn_member);

pub static ECR_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "ecr",
    action_prefix: "ecr",
    protocol: Protocol::AwsJson1_1,
    target_prefix: "AmazonEC2ContainerRegistry_V20150921",
    xml_namespace: "",
    global: false,
    operations: &[
        Operation::action("GetAuthorizationToken", "ecr:GetAuthorizationToken", ResourceRule::Any),
        Operation::action("CreateRepository", "ecr:CreateRepository", REPO),
        Operation::action("DescribeRepositories", "ecr:DescribeRepositories", ResourceRule::Any),
        Operation::action("DeleteRepository", "ecr:DeleteRepository", REPO),
        Operation::action("PutImageTagMutability", "ecr:PutImageTagMutability", REPO),
        Operation::action("PutImageScanningConfiguration", "ecr:PutImageScanningConfiguration", REPO),
        Operation::action("ListImages", "ecr:ListImages", REPO),
        Operation::action("DescribeImages", "ecr:DescribeImages", REPO),
        Operation::action("BatchGetImage", "ecr:BatchGetImage", REPO),
        Operation::action("BatchDeleteImage", "ecr:BatchDeleteImage", REPO),
        Operation::action("PutImage", "ecr:PutImage", REPO),
        Operation::action("BatchCheckLayerAvailability", "ecr:BatchCheckLayerAvailability", REPO),
        Operation::action("GetDownloadUrlForLayer", "ecr:GetDownloadUrlForLayer", REPO),
        Operation::action("InitiateLayerUpload", "ecr:InitiateLayerUpload", REPO),
        Operation::action("UploadLayerPart", "ecr:UploadLayerPart", REPO),
        Operation::action("CompleteLayerUpload", "ecr:CompleteLayerUpload", REPO),
        Operation::action("PutLifecyclePolicy", "ecr:PutLifecyclePolicy", REPO),
        Operation::action("GetLifecyclePolicy", "ecr:GetLifecyclePolicy", REPO),
        Operation::action("DeleteLifecyclePolicy", "ecr:DeleteLifecyclePolicy", REPO),
        Operation::action("SetRepositoryPolicy", "ecr:SetRepositoryPolicy", REPO),
        Operation::action("GetRepositoryPolicy", "ecr:GetRepositoryPolicy", REPO),
        Operation::action("DeleteRepositoryPolicy", "ecr:DeleteRepositoryPolicy", REPO),
        Operation::action("TagResource", "ecr:TagResource", RESOURCE_ARN),
        Operation::action("UntagResource", "ecr:UntagResource", RESOURCE_ARN),
        Operation::action("ListTagsForResource", "ecr:ListTagsForResource", RESOURCE_ARN),
    ],
};

/// `partSize` of `InitiateLayerUpload`: what clients cut layers into. 10 MiB in base64 (13.4 MiB)
/// stays under the gateway's 16 MiB body limit.
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// Items per page when `maxResults` is not given, and the most `maxResults` may ask for.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: i64 = 1000;
/// ECR's limits on batches, tags and documents.
const MAX_BATCH: usize = 100;
const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
const MAX_REPOSITORY_POLICY: usize = 10240;
const LIFECYCLE_POLICY_LENGTH: std::ops::RangeInclusive<usize> = 100..=30720;

/// The ECR API service.
pub struct EcrService {
    registry: Registry,
    credentials: Arc<dyn CredentialStore>,
}

fn invalid(message: impl Into<String>) -> AwsError {
    RegistryError::InvalidParameter(message.into()).into()
}

fn missing(member: &str) -> AwsError {
    AwsError::missing_parameter(Protocol::AwsJson1_1, member)
}

/// A string member, or `InvalidParameterException` if it is there but not a string.
fn str_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("Invalid parameter at '{member}': expected a string"))),
    }
}

fn required_str<'a>(input: &'a Map<String, Value>, member: &str) -> Result<&'a str, AwsError> {
    str_member(input, member)?.ok_or_else(|| missing(member))
}

fn bool_member(input: &Map<String, Value>, member: &str) -> Result<Option<bool>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(format!("Invalid parameter at '{member}': expected a boolean"))),
    }
}

fn i64_member(input: &Map<String, Value>, member: &str) -> Result<Option<i64>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_i64().map(Some).ok_or_else(|| invalid(format!("Invalid parameter at '{member}': expected an integer")))
        }
    }
}

fn array_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a Vec<Value>>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(invalid(format!("Invalid parameter at '{member}': expected a list"))),
    }
}

fn object_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a Map<String, Value>>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(invalid(format!("Invalid parameter at '{member}': expected a structure"))),
    }
}

/// A list of strings (`repositoryNames`, `layerDigests`, `tagKeys`, `acceptedMediaTypes`).
fn string_list<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<Vec<&'a str>>, AwsError> {
    let Some(items) = array_member(input, member)? else { return Ok(None) };
    items
        .iter()
        .map(|v| {
            v.as_str().ok_or_else(|| invalid(format!("Invalid parameter at '{member}': expected a list of strings")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn length_between(member: &str, len: usize, min: usize, max: usize) -> Result<(), AwsError> {
    if len < min {
        return Err(invalid(format!(
            "Invalid parameter at '{member}' failed to satisfy constraint: 'Member must have length greater than or equal to {min}'"
        )));
    }
    if len > max {
        return Err(invalid(format!(
            "Invalid parameter at '{member}' failed to satisfy constraint: 'Member must have length less than or equal to {max}'"
        )));
    }
    Ok(())
}

/// An `ImageIdentifier` as the request gives it.
struct ImageIdInput {
    digest: Option<String>,
    tag: Option<String>,
}

impl ImageIdInput {
    /// The identifier echoed in a failure.
    fn json(&self) -> Value {
        let mut id = Map::new();
        if let Some(d) = &self.digest {
            id.insert("imageDigest".into(), json!(d));
        }
        if let Some(t) = &self.tag {
            id.insert("imageTag".into(), json!(t));
        }
        Value::Object(id)
    }
}

/// `imageIds`: a list of `ImageIdentifier` structures.
fn image_ids(input: &Map<String, Value>, required: bool) -> Result<Option<Vec<ImageIdInput>>, AwsError> {
    let Some(items) = array_member(input, "imageIds")? else {
        return if required { Err(missing("imageIds")) } else { Ok(None) };
    };
    length_between("imageIds", items.len(), 1, MAX_BATCH)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = item
            .as_object()
            .ok_or_else(|| invalid("Invalid parameter at 'imageIds': expected a list of ImageIdentifier"))?;
        out.push(ImageIdInput {
            digest: str_member(obj, "imageDigest")?.map(str::to_string),
            tag: str_member(obj, "imageTag")?.map(str::to_string),
        });
    }
    Ok(Some(out))
}

/// ECR's `ImageFailure`.
fn image_failure(id: &ImageIdInput, code: &str, reason: impl Into<String>) -> Value {
    json!({ "imageId": id.json(), "failureCode": code, "failureReason": reason.into() })
}

/// Why an `ImageIdentifier` names no image: ECR's `failureCode` and `failureReason`.
#[derive(Debug)]
struct IdFailure {
    code: &'static str,
    reason: &'static str,
}

const NOT_FOUND: IdFailure = IdFailure { code: "ImageNotFound", reason: "Requested image not found" };

impl IdFailure {
    fn json(&self, id: &ImageIdInput) -> Value {
        image_failure(id, self.code, self.reason)
    }
}

/// What an `ImageIdentifier` of a batch names, or the failure ECR reports for it.
enum Named {
    Tag(String),
    Digest(Digest),
    Both(String, Digest),
}

fn parse_image_id(id: &ImageIdInput) -> Result<Named, IdFailure> {
    // ECR's shape for a digest; a well-formed digest berth cannot hold (sha512, upper-case hex)
    // names no image, rather than being invalid.
    let digest = match id.digest.as_deref() {
        None => None,
        Some(d) => {
            let well_formed = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && !hex.is_empty()
                    && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+.".contains(&b))
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !well_formed {
                return Err(IdFailure {
                    code: "InvalidImageDigest",
                    reason: "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
                });
            }
            match Digest::parse(d) {
                Ok(d) => Some(d),
                Err(_) => return Err(NOT_FOUND),
            }
        }
    };
    if let Some(t) = id.tag.as_deref() {
        if validate_tag(t).is_err() {
            return Err(IdFailure {
                code: "InvalidImageTag",
                reason:
                    "Invalid request parameters: image tag should satisfy the regex '[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}'",
            });
        }
    }
    match (id.tag.clone(), digest) {
        (None, None) => Err(IdFailure {
            code: "MissingDigestAndTag",
            reason: "Invalid request parameters: both tag and digest cannot be null",
        }),
        (Some(t), None) => Ok(Named::Tag(t)),
        (None, Some(d)) => Ok(Named::Digest(d)),
        (Some(t), Some(d)) => Ok(Named::Both(t, d)),
    }
}

/// Validates resource tags as ECR does: at most 50, keys of 1–128 characters not starting with
/// `aws:`, values of at most 256, letters, digits, spaces and `_ . : / = + - @`.
fn validate_tags(tags: &[Tag]) -> Result<(), AwsError> {
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    let mut seen = HashSet::new();
    for t in tags {
        let key_len = t.key.chars().count();
        if !(1..=MAX_TAG_KEY).contains(&key_len) {
            return Err(RegistryError::InvalidTagParameter(format!(
                "Tag key '{}' is invalid: a tag key has 1 to {MAX_TAG_KEY} characters",
                t.key
            ))
            .into());
        }
        if t.value.chars().count() > MAX_TAG_VALUE {
            return Err(RegistryError::InvalidTagParameter(format!(
                "The value of tag '{}' is invalid: a tag value has at most {MAX_TAG_VALUE} characters",
                t.key
            ))
            .into());
        }
        if !t.key.chars().all(allowed) || !t.value.chars().all(allowed) {
            return Err(RegistryError::InvalidTagParameter(format!(
                "Tag '{}' is invalid: tag keys and values may contain only letters, digits, spaces and _ . : / = + - @",
                t.key
            ))
            .into());
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(RegistryError::InvalidTagParameter(format!(
                "Tag key '{}' is invalid: the prefix 'aws:' is reserved for AWS use",
                t.key
            ))
            .into());
        }
        if !seen.insert(t.key.as_str()) {
            return Err(
                RegistryError::InvalidTagParameter(format!("Tag key '{}' is given more than once", t.key)).into()
            );
        }
    }
    Ok(())
}

fn too_many_tags() -> AwsError {
    RegistryError::TooManyTags(format!(
        "The list of tags on the repository is over the limit. The maximum number of tags that can be applied to a repository is {MAX_TAGS}."
    ))
    .into()
}

/// `tags`: a list of `{Key, Value}`.
fn tag_list(input: &Map<String, Value>) -> Result<Option<Vec<Tag>>, AwsError> {
    let Some(items) = array_member(input, "tags")? else { return Ok(None) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = item.as_object().ok_or_else(|| invalid("Invalid parameter at 'tags': expected a list of Tag"))?;
        let key = str_member(obj, "Key")?.ok_or_else(|| missing("tags.member.Key"))?;
        let value = str_member(obj, "Value")?.ok_or_else(|| missing("tags.member.Value"))?;
        out.push(Tag { key: key.to_string(), value: value.to_string() });
    }
    validate_tags(&out)?;
    Ok(Some(out))
}

/// A repository policy as ECR accepts it: a JSON object whose `Statement` (one or a list) has an
/// `Effect` of `Allow` or `Deny`, a `Principal` (or `NotPrincipal`) and an `Action` (or `NotAction`).
fn validate_repository_policy(text: &str) -> Result<(), AwsError> {
    let bad = || {
        invalid("Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'")
    };
    let doc: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let doc = doc.as_object().ok_or_else(bad)?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return Err(bad()),
    };
    for s in statements {
        let s = s.as_object().ok_or_else(bad)?;
        if !matches!(s.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            return Err(bad());
        }
        let principal = s.get("Principal").or_else(|| s.get("NotPrincipal"));
        if !matches!(principal, Some(Value::String(_) | Value::Object(_))) {
            return Err(bad());
        }
        let action = s.get("Action").or_else(|| s.get("NotAction"));
        let action_ok = match action {
            Some(Value::String(a)) => !a.is_empty(),
            Some(Value::Array(list)) => {
                !list.is_empty() && list.iter().all(|a| a.as_str().is_some_and(|a| !a.is_empty()))
            }
            _ => false,
        };
        if !action_ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// How far into a list a paginated call is.
struct Page {
    max: usize,
    after: Option<String>,
}

/// What a page key of each paginated operation looks like: a token whose key is not one is refused.
fn valid_page_key(operation: &str, key: &str) -> bool {
    match operation {
        "DescribeRepositories" => validate_repository_name(key).is_ok(),
        "DescribeImages" => Digest::parse(key).is_ok(),
        "ListImages" => key
            .split_once('/')
            .is_some_and(|(d, t)| Digest::parse(d).is_ok() && (t.is_empty() || validate_tag(t).is_ok())),
        _ => true,
    }
}

/// `maxResults` (1–1000) and `nextToken`, bound to the operation that issued the token.
fn page_params(input: &Map<String, Value>, operation: &str) -> Result<Page, AwsError> {
    let max = match i64_member(input, "maxResults")? {
        None => DEFAULT_PAGE,
        Some(n) if n < 1 => {
            return Err(invalid(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value greater than or equal to 1'",
            ))
        }
        Some(n) if n > MAX_PAGE => {
            return Err(invalid(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to {MAX_PAGE}'"
            )))
        }
        Some(n) => n as usize,
    };
    let after = match str_member(input, "nextToken")? {
        None => None,
        Some(token) => {
            let decoded = URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once('\n')) {
                Some((op, key)) if op == operation && valid_page_key(op, key) => Some(key.to_string()),
                _ => {
                    return Err(invalid(
                        "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'",
                    ))
                }
            }
        }
    };
    Ok(Page { max, after })
}

/// One page of `items` (sorted by their key) and the token for the next, if there is more.
fn paginate<T>(items: Vec<(String, T)>, page: &Page, operation: &str) -> (Vec<T>, Option<String>) {
    let mut rest = items.into_iter().filter(|(k, _)| page.after.as_ref().is_none_or(|a| k > a)).peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < page.max {
        let Some((k, item)) = rest.next() else { break };
        out.push(item);
        last = Some(k);
    }
    let next = match (rest.peek(), last) {
        (Some(_), Some(k)) => Some(URL_SAFE_NO_PAD.encode(format!("{operation}\n{k}"))),
        _ => None,
    };
    (out, next)
}

/// `tagStatus` of a `ListImages`/`DescribeImages` filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

/// `filter`: `tagStatus` (default `ANY`) and `imageStatus`. `Ok(None)` when the image status asked
/// for is one berth's images never have (`ARCHIVED`, `ACTIVATING`).
fn image_filter(input: &Map<String, Value>) -> Result<Option<TagStatus>, AwsError> {
    let Some(filter) = object_member(input, "filter")? else { return Ok(Some(TagStatus::Any)) };
    let tag_status = match str_member(filter, "tagStatus")? {
        None | Some("ANY") => TagStatus::Any,
        Some("TAGGED") => TagStatus::Tagged,
        Some("UNTAGGED") => TagStatus::Untagged,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' (value '{other}')"
            )))
        }
    };
    match str_member(filter, "imageStatus")? {
        None | Some("ACTIVE" | "ANY") => Ok(Some(tag_status)),
        Some("ARCHIVED" | "ACTIVATING") => Ok(None),
        Some(other) => Err(invalid(format!(
            "Invalid parameter at 'filter.imageStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [ACTIVE, ARCHIVED, ACTIVATING, ANY]' (value '{other}')"
        ))),
    }
}

fn matches_tag_status(image: &Image, status: TagStatus) -> bool {
    match status {
        TagStatus::Any => true,
        TagStatus::Tagged => !image.tags.is_empty(),
        TagStatus::Untagged => image.tags.is_empty(),
    }
}

/// The `Repository` shape.
pub fn repository_json(r: &Repository) -> Value {
    let mut encryption = json!({ "encryptionType": r.encryption_type });
    if let Some(k) = &r.kms_key {
        encryption["kmsKey"] = json!(k);
    }
    let mut out = json!({
        "repositoryArn": r.arn,
        "registryId": r.registry_id,
        "repositoryName": r.name,
        "repositoryUri": r.uri,
        "createdAt": r.created_at.0,
        "imageTagMutability": r.tag_mutability.as_str(),
        "imageScanningConfiguration": { "scanOnPush": r.scan_on_push },
        "encryptionConfiguration": encryption,
    });
    if r.tag_mutability.has_exclusions() {
        out["imageTagMutabilityExclusionFilters"] = exclusion_filters_json(&r.tag_mutability_exclusions);
    }
    out
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(tags.iter().map(|t| json!({ "Key": t.key, "Value": t.value })).collect())
}

impl EcrService {
    pub fn new(registry: Registry, credentials: Arc<dyn CredentialStore>) -> EcrService {
        EcrService { registry, credentials }
    }

    /// `registryId`, when given, must be berth's one registry.
    fn registry_id_ok(&self, input: &Map<String, Value>) -> Result<Option<String>, AwsError> {
        let Some(id) = str_member(input, "registryId")? else { return Ok(None) };
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{{12}}'' (value '{id}')"
            )));
        }
        Ok((id != self.registry.registry_id()).then(|| id.to_string()))
    }

    /// The repository a request names (`repositoryName`, validated), in this registry.
    fn repository_name<'a>(&self, input: &'a Map<String, Value>) -> Result<&'a str, AwsError> {
        let name = required_str(input, "repositoryName")?;
        validate_repository_name(name)?;
        if let Some(other) = self.registry_id_ok(input)? {
            return Err(RegistryError::RepositoryNotFound(format!(
                "The repository with name '{name}' does not exist in the registry with id '{other}'"
            ))
            .into());
        }
        Ok(name)
    }

    fn registry_id(&self) -> &str {
        self.registry.registry_id()
    }

    // ---- credentials ----

    /// `authorizationData[0]`: a password for the caller's key, valid 12 hours or until the
    /// caller's own credentials expire, whichever is first. `registryIds` may only name berth's
    /// one registry.
    fn get_authorization_token(&self, ctx: &RequestContext, input: &Map<String, Value>) -> Result<Value, AwsError> {
        if let Some(ids) = string_list(input, "registryIds")? {
            length_between("registryIds", ids.len(), 1, 10)?;
            if let Some(other) = ids.iter().find(|id| **id != self.registry_id()) {
                return Err(invalid(format!(
                    "Invalid parameter at 'registryIds': berth serves one registry, with id '{}', not '{other}'",
                    self.registry_id()
                )));
            }
        }
        let now = self.registry.now();
        let mut expires_at = Timestamp(now.0 + TOKEN_LIFETIME_SECS);
        if let Some(exp) = self.credentials.lookup(&ctx.principal.access_key_id).and_then(|c| c.expires_at) {
            expires_at = expires_at.min(exp);
        }
        let password = self.registry.tokens().mint_password(&ctx.principal.access_key_id, expires_at);
        let data = json!({
            "authorizationToken": TokenKey::authorization_token(&password),
            "expiresAt": expires_at.0,
            "proxyEndpoint": format!("http://{}", self.registry.host()),
        });
        Ok(json!({ "authorizationData": [data] }))
    }

    // ---- repositories ----

    async fn create_repository(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = required_str(input, "repositoryName")?;
        validate_repository_name(name)?;
        if let Some(other) = self.registry_id_ok(input)? {
            return Err(invalid(format!(
                "Invalid parameter at 'registryId': berth serves one registry, with id '{}', not '{other}'",
                self.registry_id()
            )));
        }
        let tag_mutability = match str_member(input, "imageTagMutability")? {
            None => TagMutability::Mutable,
            Some(m) => parse_mutability(m)?,
        };
        let tag_mutability_exclusions = exclusion_filters(input, tag_mutability)?;
        let tags = tag_list(input)?.unwrap_or_default();
        let scan_on_push = match object_member(input, "imageScanningConfiguration")? {
            Some(c) => bool_member(c, "scanOnPush")?.unwrap_or(false),
            None => false,
        };
        let (encryption_type, kms_key) = match object_member(input, "encryptionConfiguration")? {
            None => ("AES256".to_string(), None),
            Some(c) => {
                let kind = str_member(c, "encryptionType")?
                    .ok_or_else(|| missing("encryptionConfiguration.encryptionType"))?;
                let key = str_member(c, "kmsKey")?;
                match (kind, key) {
                    ("AES256", None) => ("AES256".to_string(), None),
                    ("AES256", Some(_)) => {
                        return Err(invalid(
                            "Invalid parameter at 'encryptionConfiguration' failed to satisfy constraint: 'kmsKey can only be specified when encryptionType is KMS'",
                        ))
                    }
                    ("KMS", key) => {
                        if let Some(k) = key {
                            length_between("encryptionConfiguration.kmsKey", k.len(), 1, 2048)?;
                        }
                        ("KMS".to_string(), key.map(str::to_string))
                    }
                    ("KMS_DSSE", _) => {
                        return Err(invalid(
                            "Invalid parameter at 'encryptionConfiguration.encryptionType': berth supports AES256 and KMS, not KMS_DSSE",
                        ))
                    }
                    (other, _) => {
                        return Err(invalid(format!(
                            "Invalid parameter at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]' (value '{other}')"
                        )))
                    }
                }
            }
        };
        let repo = self
            .registry
            .create_repository(NewRepository {
                name: name.to_string(),
                tag_mutability,
                tag_mutability_exclusions,
                scan_on_push,
                encryption_type,
                kms_key,
                tags,
            })
            .await?;
        Ok(json!({ "repository": repository_json(&repo) }))
    }

    /// All repositories (paginated), or exactly those named (`RepositoryNotFoundException` for the
    /// first one missing; no pagination then, as in ECR).
    async fn describe_repositories(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        if let Some(other) = self.registry_id_ok(input)? {
            return Err(RegistryError::RepositoryNotFound(format!(
                "The registry with id '{other}' does not exist or is not berth's registry"
            ))
            .into());
        }
        if let Some(names) = string_list(input, "repositoryNames")? {
            length_between("repositoryNames", names.len(), 1, MAX_BATCH)?;
            if input.get("maxResults").is_some_and(|v| !v.is_null())
                || input.get("nextToken").is_some_and(|v| !v.is_null())
            {
                return Err(invalid(
                    "Invalid parameter: maxResults and nextToken cannot be used together with repositoryNames",
                ));
            }
            for n in &names {
                validate_repository_name(n)?;
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for n in names {
                if seen.insert(n) {
                    out.push(repository_json(&self.registry.repository(n).await?));
                }
            }
            return Ok(json!({ "repositories": out }));
        }
        let page = page_params(input, "DescribeRepositories")?;
        let repos = self.registry.repositories().await?;
        let items = repos.iter().map(|r| (r.name.clone(), repository_json(r))).collect();
        let (repositories, next) = paginate(items, &page, "DescribeRepositories");
        let mut out = json!({ "repositories": repositories });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    async fn delete_repository(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let force = bool_member(input, "force")?.unwrap_or(false);
        let repo = self.registry.delete_repository(name, force).await?;
        Ok(json!({ "repository": repository_json(&repo) }))
    }

    async fn put_image_tag_mutability(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let m = parse_mutability(required_str(input, "imageTagMutability")?)?;
        let exclusions = exclusion_filters(input, m)?;
        let repo = self.registry.set_tag_mutability(name, m, &exclusions).await?;
        let mut out = json!({
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageTagMutability": repo.tag_mutability.as_str(),
        });
        if repo.tag_mutability.has_exclusions() {
            out["imageTagMutabilityExclusionFilters"] = exclusion_filters_json(&repo.tag_mutability_exclusions);
        }
        Ok(out)
    }

    async fn put_image_scanning_configuration(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let config =
            object_member(input, "imageScanningConfiguration")?.ok_or_else(|| missing("imageScanningConfiguration"))?;
        let scan = bool_member(config, "scanOnPush")?.unwrap_or(false);
        let repo = self.registry.set_scan_on_push(name, scan).await?;
        Ok(json!({
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "imageScanningConfiguration": { "scanOnPush": repo.scan_on_push },
        }))
    }

    // ---- images ----

    /// One `imageId` per tag, and a digest-only one per untagged image.
    async fn list_images(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let filter = image_filter(input)?;
        let page = page_params(input, "ListImages")?;
        let images = self.registry.images(name).await?;
        let mut items: Vec<(String, Value)> = Vec::new();
        for image in images.iter().filter(|i| filter.is_some_and(|f| matches_tag_status(i, f))) {
            let digest = image.digest.to_string();
            if image.tags.is_empty() {
                items.push((format!("{digest}/"), json!({ "imageDigest": digest })));
            }
            for t in &image.tags {
                items.push((format!("{digest}/{t}"), json!({ "imageDigest": digest, "imageTag": t })));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (ids, next) = paginate(items, &page, "ListImages");
        let mut out = json!({ "imageIds": ids });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    /// `ImageDetail`s: of the images named (`ImageNotFoundException` for one missing), or of all
    /// images, filtered and paginated.
    async fn describe_images(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let filter = image_filter(input)?;
        let ids = image_ids(input, false)?;
        if ids.is_some()
            && (input.get("maxResults").is_some_and(|v| !v.is_null())
                || input.get("nextToken").is_some_and(|v| !v.is_null()))
        {
            return Err(invalid("Invalid parameter: maxResults and nextToken cannot be used together with imageIds"));
        }
        let page = page_params(input, "DescribeImages")?;
        let images = self.registry.images(name).await?;
        let selected: Vec<&Image> = match &ids {
            None => images.iter().collect(),
            Some(ids) => {
                let mut out: Vec<&Image> = Vec::new();
                for id in ids {
                    let image = self.find_image(name, &images, id)?;
                    if !out.iter().any(|i| i.digest == image.digest) {
                        out.push(image);
                    }
                }
                out
            }
        };
        let mut items: Vec<(String, &Image)> = selected
            .into_iter()
            .filter(|i| filter.is_some_and(|f| matches_tag_status(i, f)))
            .map(|i| (i.digest.to_string(), i))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let (page_items, next) = if ids.is_some() {
            (items.into_iter().map(|(_, i)| i).collect(), None)
        } else {
            paginate(items, &page, "DescribeImages")
        };
        let mut details = Vec::with_capacity(page_items.len());
        for image in page_items {
            details.push(self.image_detail(image).await?);
        }
        let mut out = json!({ "imageDetails": details });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    /// The image an `ImageIdentifier` of `DescribeImages` names, or `ImageNotFoundException`.
    fn find_image<'a>(&self, repository: &str, images: &'a [Image], id: &ImageIdInput) -> Result<&'a Image, AwsError> {
        let not_found = || -> AwsError {
            let mut parts = Vec::new();
            if let Some(d) = &id.digest {
                parts.push(format!("imageDigest={d}"));
            }
            if let Some(t) = &id.tag {
                parts.push(format!("imageTag={t}"));
            }
            RegistryError::ImageNotFound(format!(
                "The image with imageId {{{}}} does not exist within the repository with name '{repository}' in the registry with id '{}'",
                parts.join(", "),
                self.registry_id()
            ))
            .into()
        };
        match parse_image_id(id) {
            Err(f) if f.code == NOT_FOUND.code => Err(not_found()),
            Err(f) => Err(invalid(f.reason)),
            Ok(named) => {
                let found = images.iter().find(|i| match &named {
                    Named::Tag(t) => i.tags.iter().any(|x| x == t),
                    Named::Digest(d) => i.digest == *d,
                    Named::Both(t, d) => i.digest == *d && i.tags.iter().any(|x| x == t),
                });
                found.ok_or_else(not_found)
            }
        }
    }

    /// ECR's `ImageDetail`. `artifactMediaType` is the config's media type (an index has none).
    async fn image_detail(&self, image: &Image) -> Result<Value, AwsError> {
        let mut d = json!({
            "registryId": self.registry_id(),
            "repositoryName": image.repository,
            "imageDigest": image.digest.to_string(),
            "imageSizeInBytes": image.size,
            "imagePushedAt": image.pushed_at.0,
            "imageManifestMediaType": image.media_type,
            "imageStatus": "ACTIVE",
        });
        if !image.tags.is_empty() {
            d["imageTags"] = json!(image.tags);
        }
        let artifact = match &image.artifact_type {
            Some(a) => Some(a.clone()),
            None => {
                let stored =
                    self.registry.manifest(&image.repository, &Reference::Digest(image.digest.clone())).await?;
                manifest::parse(&stored.body, Some(&stored.media_type))
                    .ok()
                    .filter(|m| !m.is_index())
                    .and_then(|m| m.blobs.first().map(|c| c.media_type.clone()))
            }
        };
        if let Some(a) = artifact {
            d["artifactMediaType"] = json!(a);
        }
        if let Some(p) = image.last_pulled_at {
            d["lastRecordedPullTime"] = json!(p.0);
        }
        if let Some(s) = &image.subject {
            d["subjectManifestDigest"] = json!(s.to_string());
        }
        Ok(d)
    }

    /// Manifests by tag or digest. Each one found is a pull (`lastRecordedPullTime`).
    async fn batch_get_image(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let ids = image_ids(input, true)?.unwrap_or_default();
        let accepted = string_list(input, "acceptedMediaTypes")?;
        if let Some(a) = &accepted {
            length_between("acceptedMediaTypes", a.len(), 1, 100)?;
        }
        self.registry.repository(name).await?;
        let mut images = Vec::new();
        let mut failures = Vec::new();
        let mut pulled = HashSet::new();
        for id in &ids {
            let named = match parse_image_id(id) {
                Ok(n) => n,
                Err(f) => {
                    failures.push(f.json(id));
                    continue;
                }
            };
            let reference = match &named {
                Named::Tag(t) | Named::Both(t, _) => Reference::Tag(t.clone()),
                Named::Digest(d) => Reference::Digest(d.clone()),
            };
            let stored = match self.registry.manifest(name, &reference).await {
                Ok(m) => m,
                Err(RegistryError::ImageNotFound(_)) => {
                    failures.push(NOT_FOUND.json(id));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Named::Both(t, d) = &named {
                if stored.digest != *d {
                    failures.push(image_failure(
                        id,
                        "ImageTagDoesNotMatchDigest",
                        format!("Invalid request parameters: image tag '{t}' does not match the image digest '{d}'"),
                    ));
                    continue;
                }
            }
            if let Some(a) = &accepted {
                if !a.iter().any(|m| *m == stored.media_type) {
                    failures.push(image_failure(
                        id,
                        "UnsupportedImageType",
                        format!(
                            "The image has media type '{}', which is not among the accepted media types",
                            stored.media_type
                        ),
                    ));
                    continue;
                }
            }
            let mut image_id = json!({ "imageDigest": stored.digest.to_string() });
            if let Named::Tag(t) | Named::Both(t, _) = &named {
                image_id["imageTag"] = json!(t);
            }
            images.push(json!({
                "registryId": self.registry_id(),
                "repositoryName": name,
                "imageId": image_id,
                "imageManifest": String::from_utf8_lossy(&stored.body),
                "imageManifestMediaType": stored.media_type,
            }));
            if pulled.insert(stored.digest.clone()) {
                self.registry.record_pull(name, &stored.digest).await?;
            }
        }
        Ok(json!({ "images": images, "failures": failures }))
    }

    /// Deletes tags and images: a tag removes that tag (and the image with its last tag), a digest
    /// the image with all its tags. What was deleted is listed as `imageIds`.
    async fn batch_delete_image(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let ids = image_ids(input, true)?.unwrap_or_default();
        let images = self.registry.images(name).await?;
        let mut tags_of: HashMap<Digest, Vec<String>> = images.into_iter().map(|i| (i.digest, i.tags)).collect();
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for id in &ids {
            let named = match parse_image_id(id) {
                Ok(n) => n,
                Err(f) => {
                    failures.push(f.json(id));
                    continue;
                }
            };
            let reference = match &named {
                Named::Tag(t) => Reference::Tag(t.clone()),
                Named::Digest(d) => Reference::Digest(d.clone()),
                Named::Both(t, d) => {
                    let current = tags_of.iter().find(|(_, tags)| tags.contains(t)).map(|(d, _)| d.clone());
                    match current {
                        Some(c) if c == *d => Reference::Tag(t.clone()),
                        Some(_) => {
                            failures.push(image_failure(
                                id,
                                "ImageTagDoesNotMatchDigest",
                                format!(
                                    "Invalid request parameters: image tag '{t}' does not match the image digest '{d}'"
                                ),
                            ));
                            continue;
                        }
                        None => {
                            failures.push(NOT_FOUND.json(id));
                            continue;
                        }
                    }
                }
            };
            match self.registry.delete_image(name, &reference).await {
                Ok(Ok(digest)) => match &reference {
                    Reference::Tag(t) => {
                        deleted.push(json!({ "imageDigest": digest.to_string(), "imageTag": t }));
                        if let Some(tags) = tags_of.get_mut(&digest) {
                            tags.retain(|x| x != t);
                        }
                    }
                    Reference::Digest(_) => {
                        let tags = tags_of.remove(&digest).unwrap_or_default();
                        if tags.is_empty() {
                            deleted.push(json!({ "imageDigest": digest.to_string() }));
                        }
                        for t in tags {
                            deleted.push(json!({ "imageDigest": digest.to_string(), "imageTag": t }));
                        }
                    }
                },
                Ok(Err(reason)) => failures.push(image_failure(id, "ImageReferencedByManifestList", reason)),
                Err(RegistryError::ImageNotFound(_)) => failures.push(NOT_FOUND.json(id)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(json!({ "imageIds": deleted, "failures": failures }))
    }

    /// Stores a manifest (and moves `imageTag` to it) through the same path as a data-path PUT.
    async fn put_image(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let body = required_str(input, "imageManifest")?;
        length_between("imageManifest", body.len(), 1, manifest::MAX_MANIFEST_BYTES)?;
        let media_type = str_member(input, "imageManifestMediaType")?;
        let tag = str_member(input, "imageTag")?;
        if let Some(t) = tag {
            length_between("imageTag", t.len(), 1, 300)?;
        }
        let expected = match str_member(input, "imageDigest")? {
            None => None,
            Some(d) => Some(Digest::parse(d).map_err(|e| invalid(format!("Invalid parameter at 'imageDigest': {e}")))?),
        };
        let put = self
            .registry
            .put_manifest(name, Bytes::copy_from_slice(body.as_bytes()), media_type, tag, expected.as_ref())
            .await?;
        let digest = put.manifest.digest.to_string();
        if !put.changed {
            let tag_part = tag.map(|t| format!(" and tag '{t}'")).unwrap_or_default();
            return Err(RegistryError::ImageAlreadyExists(format!(
                "Image with digest '{digest}'{tag_part} already exists in the repository with name '{name}' in registry with id '{}'",
                self.registry_id()
            ))
            .into());
        }
        let mut image_id = json!({ "imageDigest": digest });
        if let Some(t) = tag {
            image_id["imageTag"] = json!(t);
        }
        Ok(json!({
            "image": {
                "registryId": self.registry_id(),
                "repositoryName": name,
                "imageId": image_id,
                "imageManifest": body,
                "imageManifestMediaType": put.manifest.media_type,
            }
        }))
    }

    // ---- layers ----

    async fn batch_check_layer_availability(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let digests = string_list(input, "layerDigests")?.ok_or_else(|| missing("layerDigests"))?;
        length_between("layerDigests", digests.len(), 1, MAX_BATCH)?;
        self.registry.repository(name).await?;
        let mut layers = Vec::new();
        let mut failures = Vec::new();
        for d in digests {
            if d.is_empty() {
                failures.push(json!({
                    "layerDigest": d, "failureCode": "MissingLayerDigest",
                    "failureReason": "The layer digest is empty",
                }));
                continue;
            }
            let Ok(digest) = Digest::parse(d) else {
                failures.push(json!({
                    "layerDigest": d, "failureCode": "InvalidLayerDigest",
                    "failureReason": "Invalid layer digest: a digest is 'sha256:' and 64 lower-case hex characters",
                }));
                continue;
            };
            match self.registry.blob_size(name, &digest).await? {
                Some(size) => {
                    layers.push(json!({ "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size }))
                }
                // As ECR (and moto, which follows it) answers: a layer the repository lacks is a failure.
                None => failures.push(json!({
                    "layerDigest": d, "failureCode": "MissingLayerDigest",
                    "failureReason": "Could not find layer",
                })),
            }
        }
        Ok(json!({ "layers": layers, "failures": failures }))
    }

    /// A URL on berth's data path that reads the blob without other credentials for an hour.
    async fn get_download_url_for_layer(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let raw = required_str(input, "layerDigest")?;
        let digest = Digest::parse(raw).map_err(|e| invalid(format!("Invalid parameter at 'layerDigest': {e}")))?;
        self.registry.repository(name).await?;
        if self.registry.blob_size(name, &digest).await?.is_none() {
            return Err(RegistryError::LayersNotFound(format!(
                "The layer with digest '{digest}' does not exist in the repository with name '{name}' in the registry with id '{}'",
                self.registry_id()
            ))
            .into());
        }
        let expires = Timestamp(self.registry.now().0 + DOWNLOAD_URL_LIFETIME_SECS);
        let query = self.registry.tokens().sign_download(name, &digest.to_string(), expires);
        Ok(json!({
            "downloadUrl": format!("http://{}/v2/{name}/blobs/{digest}?{query}", self.registry.host()),
            "layerDigest": digest.to_string(),
        }))
    }

    async fn initiate_layer_upload(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let id = self.registry.start_upload(name).await?;
        Ok(json!({ "uploadId": id.as_str(), "partSize": PART_SIZE }))
    }

    /// The upload a request names, after checking that its repository exists.
    async fn upload_id(&self, name: &str, input: &Map<String, Value>) -> Result<UploadId, AwsError> {
        let raw = required_str(input, "uploadId")?;
        self.registry.repository(name).await?;
        UploadId::parse(raw).ok_or_else(|| {
            RegistryError::UploadNotFound(format!(
                "The upload with id '{raw}' does not exist in the repository with name '{name}'"
            ))
            .into()
        })
    }

    /// Appends a part. Parts follow each other: `partFirstByte` must be the number of bytes stored
    /// so far and `partLastByte` the index of the part's last byte; otherwise
    /// `InvalidLayerPartException` says where the upload stands (`lastValidByteReceived`).
    async fn upload_layer_part(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let first = i64_member(input, "partFirstByte")?.ok_or_else(|| missing("partFirstByte"))?;
        let last = i64_member(input, "partLastByte")?.ok_or_else(|| missing("partLastByte"))?;
        let blob = required_str(input, "layerPartBlob")?;
        let id = self.upload_id(name, input).await?;
        let part = STANDARD
            .decode(blob)
            .map_err(|_| invalid("Invalid parameter at 'layerPartBlob': expected base64-encoded bytes"))?;
        let size = self.registry.upload_size(name, &id).await?;
        let refuse = |size: u64, why: String| -> AwsError {
            let mut e = AwsError::from(RegistryError::InvalidLayerPart(why))
                .with_field("registryId", self.registry_id())
                .with_field("repositoryName", name)
                .with_field("uploadId", id.as_str());
            if size > 0 {
                e = e.with_field("lastValidByteReceived", size - 1);
            }
            e
        };
        if first < 0 || first as u64 != size {
            return Err(refuse(
                size,
                format!(
                    "The part's first byte {first} does not follow the {size} bytes received so far for upload '{id}'"
                ),
            ));
        }
        if part.is_empty() {
            return Err(refuse(size, "The layer part is empty".to_string()));
        }
        let expected_last = size + part.len() as u64 - 1;
        if last < 0 || last as u64 != expected_last {
            return Err(refuse(
                size,
                format!(
                    "The part's last byte {last} does not match its {} bytes starting at byte {first} (expected {expected_last})",
                    part.len()
                ),
            ));
        }
        let new_size = match self.registry.append(name, &id, &part, Some(size)).await {
            Ok(s) => s,
            Err(RegistryError::InvalidLayerPart(why)) => {
                // Another part landed first.
                let now = self.registry.upload_size(name, &id).await.unwrap_or(size);
                return Err(refuse(now, why));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(json!({
            "registryId": self.registry_id(),
            "repositoryName": name,
            "uploadId": id.as_str(),
            "lastByteReceived": new_size - 1,
        }))
    }

    /// Verifies the upload against its one digest and makes the layer part of the repository.
    /// An empty upload stays open (`EmptyUploadException`); a wrong digest discards it
    /// (`InvalidLayerException`); a layer the repository had already is `LayerAlreadyExistsException`.
    async fn complete_layer_upload(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let digests = string_list(input, "layerDigests")?.ok_or_else(|| missing("layerDigests"))?;
        length_between("layerDigests", digests.len(), 1, MAX_BATCH)?;
        if digests.len() != 1 {
            return Err(invalid("Invalid parameter at 'layerDigests': exactly one layer digest is supported"));
        }
        let digest = Digest::parse(digests[0]).map_err(|e| {
            AwsError::from(RegistryError::InvalidLayer(format!("Invalid layer digest '{}': {e}", digests[0])))
        })?;
        let id = self.upload_id(name, input).await?;
        if self.registry.upload_size(name, &id).await? == 0 {
            return Err(RegistryError::EmptyUpload(format!(
                "The upload with id '{id}' in the repository with name '{name}' contains no data"
            ))
            .into());
        }
        let existed = self.registry.blob_size(name, &digest).await?.is_some();
        self.registry.complete_upload(name, &id, &digest).await?;
        if existed {
            return Err(RegistryError::LayerAlreadyExists(format!(
                "Layer with digest '{digest}' already exists in the repository with name '{name}' in registry with id '{}'",
                self.registry_id()
            ))
            .into());
        }
        Ok(json!({
            "registryId": self.registry_id(),
            "repositoryName": name,
            "uploadId": id.as_str(),
            "layerDigest": digest.to_string(),
        }))
    }

    // ---- lifecycle policies ----

    async fn put_lifecycle_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let text = required_str(input, "lifecyclePolicyText")?;
        let len = text.chars().count();
        length_between("lifecyclePolicyText", len, *LIFECYCLE_POLICY_LENGTH.start(), *LIFECYCLE_POLICY_LENGTH.end())?;
        crate::lifecycle::parse(text)?;
        let repo = self.registry.set_lifecycle_policy(name, Some(text.to_string())).await?;
        Ok(json!({ "registryId": repo.registry_id, "repositoryName": repo.name, "lifecyclePolicyText": text }))
    }

    fn lifecycle_policy_not_found(&self, name: &str) -> AwsError {
        RegistryError::LifecyclePolicyNotFound(format!(
            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            self.registry_id()
        ))
        .into()
    }

    fn lifecycle_json(repo: &Repository, text: &str) -> Value {
        let mut out =
            json!({ "registryId": repo.registry_id, "repositoryName": repo.name, "lifecyclePolicyText": text });
        if let Some(at) = repo.lifecycle_evaluated_at {
            out["lastEvaluatedAt"] = json!(at.0);
        }
        out
    }

    async fn get_lifecycle_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let repo = self.registry.repository(name).await?;
        let text = repo.lifecycle_policy.clone().ok_or_else(|| self.lifecycle_policy_not_found(name))?;
        Ok(Self::lifecycle_json(&repo, &text))
    }

    async fn delete_lifecycle_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let repo = self.registry.repository(name).await?;
        let text = repo.lifecycle_policy.clone().ok_or_else(|| self.lifecycle_policy_not_found(name))?;
        self.registry.set_lifecycle_policy(name, None).await?;
        Ok(Self::lifecycle_json(&repo, &text))
    }

    // ---- repository policies ----

    async fn set_repository_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let text = required_str(input, "policyText")?;
        length_between("policyText", text.chars().count(), 0, MAX_REPOSITORY_POLICY)?;
        bool_member(input, "force")?;
        validate_repository_policy(text)?;
        let repo = self.registry.set_repository_policy(name, Some(text.to_string())).await?;
        Ok(json!({ "registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text }))
    }

    fn repository_policy_not_found(&self, name: &str) -> AwsError {
        RegistryError::RepositoryPolicyNotFound(format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            self.registry_id()
        ))
        .into()
    }

    async fn get_repository_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let repo = self.registry.repository(name).await?;
        let text = repo.policy.clone().ok_or_else(|| self.repository_policy_not_found(name))?;
        Ok(json!({ "registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text }))
    }

    async fn delete_repository_policy(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = self.repository_name(input)?;
        let repo = self.registry.repository(name).await?;
        let text = repo.policy.clone().ok_or_else(|| self.repository_policy_not_found(name))?;
        self.registry.set_repository_policy(name, None).await?;
        Ok(json!({ "registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text }))
    }

    // ---- tags ----

    /// The repository a `resourceArn` names: `arn:aws:ecr:<region>:<account>:repository/<name>`.
    async fn tagged_repository(&self, input: &Map<String, Value>) -> Result<Repository, AwsError> {
        let arn = required_str(input, "resourceArn")?;
        let bad = || {
            invalid(format!(
                "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN' (value '{arn}')"
            ))
        };
        let parsed = berth_aws::context::Arn::parse(arn).ok_or_else(bad)?;
        let name = parsed.resource.strip_prefix("repository/").ok_or_else(bad)?;
        if parsed.service != "ecr" || parsed.partition != self.registry.aws().partition {
            return Err(bad());
        }
        validate_repository_name(name).map_err(|_| bad())?;
        if parsed.region != self.registry.aws().region || parsed.account_id != self.registry_id() {
            return Err(RegistryError::RepositoryNotFound(format!(
                "The repository with name '{name}' does not exist in the registry with id '{}'",
                parsed.account_id
            ))
            .into());
        }
        Ok(self.registry.repository(name).await?)
    }

    /// Adds tags, replacing the values of keys already there.
    async fn tag_resource(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let new = tag_list(input)?.ok_or_else(|| missing("tags"))?;
        let repo = self.tagged_repository(input).await?;
        let mut tags: BTreeMap<String, String> = repo.tags.into_iter().map(|t| (t.key, t.value)).collect();
        for t in new {
            tags.insert(t.key, t.value);
        }
        if tags.len() > MAX_TAGS {
            return Err(too_many_tags());
        }
        let tags: Vec<Tag> = tags.into_iter().map(|(key, value)| Tag { key, value }).collect();
        self.registry.set_tags(&repo.name, &tags).await?;
        Ok(json!({}))
    }

    async fn untag_resource(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let keys = string_list(input, "tagKeys")?.ok_or_else(|| missing("tagKeys"))?;
        for k in &keys {
            if !(1..=MAX_TAG_KEY).contains(&k.chars().count()) {
                return Err(RegistryError::InvalidTagParameter(format!(
                    "Tag key '{k}' is invalid: a tag key has 1 to {MAX_TAG_KEY} characters"
                ))
                .into());
            }
        }
        let repo = self.tagged_repository(input).await?;
        let tags: Vec<Tag> = repo.tags.into_iter().filter(|t| !keys.contains(&t.key.as_str())).collect();
        self.registry.set_tags(&repo.name, &tags).await?;
        Ok(json!({}))
    }

    async fn list_tags_for_resource(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let repo = self.tagged_repository(input).await?;
        Ok(json!({ "tags": tags_json(&repo.tags) }))
    }
}

fn parse_mutability(m: &str) -> Result<TagMutability, AwsError> {
    TagMutability::parse(m).ok_or_else(|| {
        invalid(format!(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]' (value '{m}')"
        ))
    })
}

/// `imageTagMutabilityExclusionFilters`: 1–5 `{filterType: WILDCARD, filter}` with the
/// `*_WITH_EXCLUSION` settings, none otherwise.
fn exclusion_filters(input: &Map<String, Value>, m: TagMutability) -> Result<Vec<String>, AwsError> {
    const MEMBER: &str = "imageTagMutabilityExclusionFilters";
    let list = match input.get(MEMBER) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items),
        Some(_) => return Err(invalid(format!("Invalid parameter at '{MEMBER}': expected a list"))),
    };
    let Some(list) = list else {
        if m.has_exclusions() {
            return Err(invalid(format!(
                "Invalid parameter at '{MEMBER}': exclusion filters are required when imageTagMutability is {}",
                m.as_str()
            )));
        }
        return Ok(Vec::new());
    };
    if !m.has_exclusions() {
        return Err(invalid(format!(
            "Invalid parameter at '{MEMBER}': exclusion filters can only be set when imageTagMutability is IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION"
        )));
    }
    if list.is_empty() || list.len() > 5 {
        return Err(invalid(format!(
            "Invalid parameter at '{MEMBER}' failed to satisfy constraint: 'Member must have length between 1 and 5'"
        )));
    }
    let mut filters = Vec::with_capacity(list.len());
    for item in list {
        let obj =
            item.as_object().ok_or_else(|| invalid(format!("Invalid parameter at '{MEMBER}': expected objects")))?;
        match obj.get("filterType").and_then(Value::as_str) {
            Some("WILDCARD") => {}
            other => {
                return Err(invalid(format!(
                    "Invalid parameter at '{MEMBER}.filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]' (value '{}')",
                    other.unwrap_or("null")
                )))
            }
        }
        let filter = obj.get("filter").and_then(Value::as_str).ok_or_else(|| missing(&format!("{MEMBER}.filter")))?;
        let ok = (1..=128).contains(&filter.len())
            && filter.bytes().all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b));
        if !ok {
            return Err(invalid(format!(
                "Invalid parameter at '{MEMBER}.filter' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{{1,128}}$' (value '{filter}')"
            )));
        }
        filters.push(filter.to_string());
    }
    Ok(filters)
}

fn exclusion_filters_json(filters: &[String]) -> Value {
    Value::Array(filters.iter().map(|f| json!({ "filterType": "WILDCARD", "filter": f })).collect())
}

impl Service for EcrService {
    fn spec(&self) -> &'static ServiceSpec {
        &ECR_SPEC
    }

    fn resource_policy(&self, resource: &str) -> Option<Arc<str>> {
        let name = resource.split_once(":repository/")?.1;
        self.registry.repository_policy(name)
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let empty = Map::new();
            let m = input.as_json().unwrap_or(&empty);
            let out = match ctx.operation {
                "GetAuthorizationToken" => self.get_authorization_token(ctx, m)?,
                "CreateRepository" => self.create_repository(m).await?,
                "DescribeRepositories" => self.describe_repositories(m).await?,
                "DeleteRepository" => self.delete_repository(m).await?,
                "PutImageTagMutability" => self.put_image_tag_mutability(m).await?,
                "PutImageScanningConfiguration" => self.put_image_scanning_configuration(m).await?,
                "ListImages" => self.list_images(m).await?,
                "DescribeImages" => self.describe_images(m).await?,
                "BatchGetImage" => self.batch_get_image(m).await?,
                "BatchDeleteImage" => self.batch_delete_image(m).await?,
                "PutImage" => self.put_image(m).await?,
                "BatchCheckLayerAvailability" => self.batch_check_layer_availability(m).await?,
                "GetDownloadUrlForLayer" => self.get_download_url_for_layer(m).await?,
                "InitiateLayerUpload" => self.initiate_layer_upload(m).await?,
                "UploadLayerPart" => self.upload_layer_part(m).await?,
                "CompleteLayerUpload" => self.complete_layer_upload(m).await?,
                "PutLifecyclePolicy" => self.put_lifecycle_policy(m).await?,
                "GetLifecyclePolicy" => self.get_lifecycle_policy(m).await?,
                "DeleteLifecyclePolicy" => self.delete_lifecycle_policy(m).await?,
                "SetRepositoryPolicy" => self.set_repository_policy(m).await?,
                "GetRepositoryPolicy" => self.get_repository_policy(m).await?,
                "DeleteRepositoryPolicy" => self.delete_repository_policy(m).await?,
                "TagResource" => self.tag_resource(m).await?,
                "UntagResource" => self.untag_resource(m).await?,
                "ListTagsForResource" => self.list_tags_for_resource(m).await?,
                op => return Err(AwsError::client("UnknownOperationException", format!("Unknown operation {op}"))),
            };
            Ok(Output::Json(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_and_tokens_are_bound_to_their_operation() {
        let items = |n: usize| (0..n).map(|i| (format!("k{i:02}"), i)).collect::<Vec<_>>();
        let page = Page { max: 2, after: None };
        let (first, next) = paginate(items(5), &page, "Test");
        assert_eq!(first, vec![0, 1]);
        let token = next.unwrap();
        let input: Map<String, Value> = serde_json::from_value(json!({ "nextToken": token, "maxResults": 2 })).unwrap();
        let p = page_params(&input, "Test").unwrap();
        let (second, next) = paginate(items(5), &p, "Test");
        assert_eq!(second, vec![2, 3]);
        let input: Map<String, Value> = serde_json::from_value(json!({ "nextToken": next.unwrap() })).unwrap();
        let (third, next) = paginate(items(5), &page_params(&input, "Test").unwrap(), "Test");
        assert_eq!(third, vec![4]);
        assert!(next.is_none());
        assert!(page_params(&input, "DescribeImages").is_err());
        let garbage: Map<String, Value> = serde_json::from_value(json!({ "nextToken": "!!" })).unwrap();
        assert!(page_params(&garbage, "ListImages").is_err());
        // A token naming something that cannot be a key of the operation is refused.
        let forged = URL_SAFE_NO_PAD.encode("DescribeImages\nsha256:zz");
        let forged: Map<String, Value> = serde_json::from_value(json!({ "nextToken": forged })).unwrap();
        assert!(page_params(&forged, "DescribeImages").is_err());
        for bad in [0, 1001] {
            let m: Map<String, Value> = serde_json::from_value(json!({ "maxResults": bad })).unwrap();
            assert!(page_params(&m, "ListImages").is_err(), "{bad}");
        }
        // An exact last page has no token.
        let (all, next) = paginate(items(2), &page, "Test");
        assert_eq!(all, vec![0, 1]);
        assert!(next.is_none());
    }

    #[test]
    fn repository_policies_need_effect_principal_and_action() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["ecr:BatchGetImage"]}]}"#;
        assert!(validate_repository_policy(ok).is_ok());
        let single = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"ecr:*"}}"#;
        assert!(validate_repository_policy(single).is_ok());
        for bad in [
            "not json",
            "[]",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"ecr:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":[]}]}"#,
        ] {
            let e = validate_repository_policy(bad).unwrap_err();
            assert_eq!(e.code, "InvalidParameterException", "{bad}");
            assert!(e.message.contains("Invalid repository policy provided"), "{bad}");
        }
    }

    #[test]
    fn tags_follow_ecr_limits() {
        let tag = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
        assert!(validate_tags(&[tag("team", "a b:c/d=e+f-g@h_i.j")]).is_ok());
        assert_eq!(validate_tags(&[tag("", "x")]).unwrap_err().code, "InvalidTagParameterException");
        assert_eq!(validate_tags(&[tag(&"k".repeat(129), "x")]).unwrap_err().code, "InvalidTagParameterException");
        assert!(validate_tags(&[tag(&"k".repeat(128), &"v".repeat(256))]).is_ok());
        assert_eq!(validate_tags(&[tag("k", &"v".repeat(257))]).unwrap_err().code, "InvalidTagParameterException");
        assert_eq!(validate_tags(&[tag("aws:x", "v")]).unwrap_err().code, "InvalidTagParameterException");
        assert_eq!(validate_tags(&[tag("a", "1"), tag("a", "2")]).unwrap_err().code, "InvalidTagParameterException");
        let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(validate_tags(&many).unwrap_err().code, "TooManyTagsException");
        assert!(validate_tags(&many[..50]).is_ok());
    }

    #[test]
    fn image_ids_are_classified_as_ecr_does() {
        let id = |d: Option<&str>, t: Option<&str>| ImageIdInput { digest: d.map(Into::into), tag: t.map(Into::into) };
        let code = |r: Result<Named, IdFailure>| r.err().map(|f| f.code.to_string());
        assert_eq!(code(parse_image_id(&id(None, None))).as_deref(), Some("MissingDigestAndTag"));
        assert_eq!(code(parse_image_id(&id(Some("nodigest"), None))).as_deref(), Some("InvalidImageDigest"));
        assert_eq!(code(parse_image_id(&id(Some("sha512:abcd"), None))).as_deref(), Some("ImageNotFound"));
        assert_eq!(code(parse_image_id(&id(None, Some("-bad")))).as_deref(), Some("InvalidImageTag"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(parse_image_id(&id(Some(&d), Some("v1"))), Ok(Named::Both(..))));
        assert!(matches!(parse_image_id(&id(None, Some("v1"))), Ok(Named::Tag(_))));
    }
}
