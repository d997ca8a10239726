//! Lifecycle policies: the document `PutLifecyclePolicy` accepts ([`parse`]), which images it
//! expires ([`evaluate`], ECR's "lifecycle policy evaluation rules"), and applying it to a
//! repository ([`apply`], [`preview`]).
//!
//! A policy is a list of rules evaluated in `rulePriority` order. Each rule selects images by their
//! tags (`tagged` with prefixes or `*` patterns, `untagged`, or `any`) and expires those beyond a
//! count (`imageCountMoreThan`) or older than an age (`sinceImagePushed`). An image belongs to the
//! first rule that selects it, whether or not that rule expires it: a lower-priority rule still
//! counts it but never expires it. Images in use (the [`crate::ImagesInUse`] hook: what running
//! tasks and deployments pull) are never expired, nor are the images an index that is kept refers
//! to.

use std::collections::{HashMap, HashSet};

use berth_aws::time::Timestamp;
use serde_json::{Map, Value};

use crate::blob_store::Digest;
use crate::error::RegistryError;
use crate::registry::{Image, Reference, Registry};

/// A validated lifecycle policy, its rules sorted by priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub description: Option<String>,
    pub selection: Selection,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub tag_status: TagStatus,
    pub count: Count,
}

/// `tagStatus`, with the tag filter a `tagged` rule carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagStatus {
    /// Images with a tag for each prefix (`tagPrefixList`).
    TaggedPrefixes(Vec<String>),
    /// Images with a tag matching each pattern (`tagPatternList`, `*` matches any run of characters).
    TaggedPatterns(Vec<String>),
    Untagged,
    Any,
}

impl TagStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TagStatus::TaggedPrefixes(_) | TagStatus::TaggedPatterns(_) => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        }
    }
}

/// `countType` with its `countNumber` (and, for `sinceImagePushed`, `countUnit` `days`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    ImageCountMoreThan(u32),
    SinceImagePushedDays(u32),
}

/// At most four `*` in one `tagPatternList` entry, as ECR allows.
const MAX_WILDCARDS: usize = 4;
/// Entries of a `tagPrefixList` / `tagPatternList`.
const MAX_TAG_FILTERS: usize = 100;

fn invalid(reason: impl std::fmt::Display) -> RegistryError {
    RegistryError::InvalidParameter(format!(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {reason}'"
    ))
}

/// Refuses properties the schema does not know, as ECR's schema validation does.
fn only_known(obj: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), RegistryError> {
    let mut extra: Vec<&str> = obj.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort_unstable();
    Err(invalid(format_args!(
        "object instance at {at} has properties which are not allowed by the schema: [{}]",
        extra.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(",")
    )))
}

fn required<'a>(obj: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a Value, RegistryError> {
    obj.get(key).ok_or_else(|| invalid(format_args!("object at {at} has missing required properties ([\"{key}\"])")))
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, RegistryError> {
    v.as_object().ok_or_else(|| invalid(format_args!("instance at {at} is not an object")))
}

/// An integer ≥ 1 that fits ECR's `int`.
fn positive_int(v: &Value, at: &str) -> Result<u32, RegistryError> {
    match v.as_u64() {
        Some(n) if n >= 1 && n <= i32::MAX as u64 => Ok(n as u32),
        Some(_) => Err(invalid(format_args!("numeric instance at {at} is not between 1 and {}", i32::MAX))),
        None if v.is_i64() => {
            Err(invalid(format_args!("numeric instance at {at} is lower than the required minimum 1")))
        }
        None => Err(invalid(format_args!("instance at {at} is not an integer"))),
    }
}

fn string<'a>(v: &'a Value, at: &str) -> Result<&'a str, RegistryError> {
    v.as_str().ok_or_else(|| invalid(format_args!("instance at {at} is not a string")))
}

/// A non-empty list of non-empty, distinct strings.
fn string_list(v: &Value, at: &str) -> Result<Vec<String>, RegistryError> {
    let items = v.as_array().ok_or_else(|| invalid(format_args!("instance at {at} is not an array")))?;
    if items.is_empty() {
        return Err(invalid(format_args!("array at {at} is too short: must have at least 1 element")));
    }
    if items.len() > MAX_TAG_FILTERS {
        return Err(invalid(format_args!("array at {at} is too long: must have at most {MAX_TAG_FILTERS} elements")));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = string(item, &format!("{at}/{i}"))?;
        if s.is_empty() {
            return Err(invalid(format_args!("string at {at}/{i} is too short: must have at least 1 character")));
        }
        if out.iter().any(|o| o == s) {
            return Err(invalid(format_args!("array at {at} must not contain duplicate elements")));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// Validates a lifecycle policy document as `PutLifecyclePolicy` and
/// `StartLifecyclePolicyPreview` do; every problem is `InvalidParameterException`.
pub fn parse(text: &str) -> Result<LifecyclePolicy, RegistryError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| invalid(format_args!("the document is not valid JSON: {e}")))?;
    let doc = object(&doc, "/")?;
    only_known(doc, "/", &["rules"])?;
    let rules = required(doc, "/", "rules")?.as_array().ok_or_else(|| invalid("instance at /rules is not an array"))?;
    if rules.is_empty() {
        return Err(invalid("array at /rules is too short: must have at least 1 element"));
    }
    let mut out: Vec<Rule> = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("/rules/{i}");
        let r = parse_rule(rule, &at)?;
        if out.iter().any(|o| o.priority == r.priority) {
            return Err(invalid(format_args!(
                "rulePriority {} is used by more than one rule; priorities must be unique",
                r.priority
            )));
        }
        out.push(r);
    }
    out.sort_by_key(|r| r.priority);
    if out.iter().filter(|r| r.selection.tag_status == TagStatus::Untagged).count() > 1 {
        return Err(invalid("only one rule is allowed to select untagged images"));
    }
    let mut filters: Vec<(u32, bool, Vec<&str>)> = Vec::new();
    for r in &out {
        let (is_prefix, list) = match &r.selection.tag_status {
            TagStatus::TaggedPrefixes(list) => (true, list),
            TagStatus::TaggedPatterns(list) => (false, list),
            _ => continue,
        };
        let mut set: Vec<&str> = list.iter().map(String::as_str).collect();
        set.sort_unstable();
        if let Some((other, ..)) = filters.iter().find(|(_, p, s)| *p == is_prefix && *s == set) {
            return Err(invalid(format_args!(
                "rules {other} and {} select the same tags; the set of rules must contain a unique set of tag prefixes",
                r.priority
            )));
        }
        filters.push((r.priority, is_prefix, set));
    }
    let any_rules: Vec<&Rule> = out.iter().filter(|r| r.selection.tag_status == TagStatus::Any).collect();
    if any_rules.len() > 1 {
        return Err(invalid("a lifecycle policy can have at most one rule with tagStatus 'any'"));
    }
    if let (Some(any), Some(last)) = (any_rules.first(), out.last()) {
        if any.priority != last.priority {
            return Err(invalid(format_args!(
                "the rule with tagStatus 'any' (rulePriority {}) must have the highest rulePriority",
                any.priority
            )));
        }
    }
    Ok(LifecyclePolicy { rules: out })
}

fn parse_rule(v: &Value, at: &str) -> Result<Rule, RegistryError> {
    let rule = object(v, at)?;
    only_known(rule, at, &["rulePriority", "description", "selection", "action"])?;
    let priority = positive_int(required(rule, at, "rulePriority")?, &format!("{at}/rulePriority"))?;
    let description = match rule.get("description") {
        Some(d) => Some(string(d, &format!("{at}/description"))?.to_string()),
        None => None,
    };
    let action_at = format!("{at}/action");
    let action = object(required(rule, at, "action")?, &action_at)?;
    only_known(action, &action_at, &["type"])?;
    let kind = string(required(action, &action_at, "type")?, &format!("{action_at}/type"))?;
    if kind != "expire" {
        return Err(invalid(format_args!(
            "instance value (\"{kind}\") at {action_at}/type not found in enum (possible values: [\"expire\"])"
        )));
    }
    let sel_at = format!("{at}/selection");
    let sel = object(required(rule, at, "selection")?, &sel_at)?;
    only_known(
        sel,
        &sel_at,
        &["tagStatus", "tagPrefixList", "tagPatternList", "countType", "countUnit", "countNumber"],
    )?;
    let status = string(required(sel, &sel_at, "tagStatus")?, &format!("{sel_at}/tagStatus"))?;
    let prefixes = sel.get("tagPrefixList").map(|v| string_list(v, &format!("{sel_at}/tagPrefixList"))).transpose()?;
    let patterns =
        sel.get("tagPatternList").map(|v| string_list(v, &format!("{sel_at}/tagPatternList"))).transpose()?;
    let tag_status = match status {
        "tagged" => match (prefixes, patterns) {
            (Some(_), Some(_)) => {
                return Err(invalid(format_args!(
                    "rule {priority}: tagPrefixList and tagPatternList cannot both be specified"
                )))
            }
            (Some(p), None) => TagStatus::TaggedPrefixes(p),
            (None, Some(p)) => {
                if let Some(bad) = p.iter().find(|p| p.matches('*').count() > MAX_WILDCARDS) {
                    return Err(invalid(format_args!(
                        "rule {priority}: tag pattern '{bad}' has more than {MAX_WILDCARDS} wildcards"
                    )));
                }
                TagStatus::TaggedPatterns(p)
            }
            (None, None) => {
                return Err(invalid(format_args!(
                    "rule {priority}: tagPrefixList or tagPatternList is required when tagStatus is 'tagged'"
                )))
            }
        },
        "untagged" | "any" => {
            if prefixes.is_some() || patterns.is_some() {
                return Err(invalid(format_args!(
                    "rule {priority}: tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'"
                )));
            }
            if status == "any" {
                TagStatus::Any
            } else {
                TagStatus::Untagged
            }
        }
        other => {
            return Err(invalid(format_args!(
                "instance value (\"{other}\") at {sel_at}/tagStatus not found in enum (possible values: [\"tagged\",\"untagged\",\"any\"])"
            )))
        }
    };
    let count_type = string(required(sel, &sel_at, "countType")?, &format!("{sel_at}/countType"))?;
    let number = positive_int(required(sel, &sel_at, "countNumber")?, &format!("{sel_at}/countNumber"))?;
    let unit = sel.get("countUnit").map(|u| string(u, &format!("{sel_at}/countUnit"))).transpose()?;
    let count = match count_type {
        "imageCountMoreThan" => {
            if unit.is_some() {
                return Err(invalid(format_args!(
                    "rule {priority}: countUnit is not allowed when countType is 'imageCountMoreThan'"
                )));
            }
            Count::ImageCountMoreThan(number)
        }
        "sinceImagePushed" => match unit {
            Some("days") => Count::SinceImagePushedDays(number),
            Some(other) => {
                return Err(invalid(format_args!(
                    "instance value (\"{other}\") at {sel_at}/countUnit not found in enum (possible values: [\"days\"])"
                )))
            }
            None => {
                return Err(invalid(format_args!(
                    "rule {priority}: countUnit is required when countType is 'sinceImagePushed'"
                )))
            }
        },
        other => {
            return Err(invalid(format_args!(
                "instance value (\"{other}\") at {sel_at}/countType not found in enum (possible values: [\"imageCountMoreThan\",\"sinceImagePushed\"])"
            )))
        }
    };
    Ok(Rule { priority, description, selection: Selection { tag_status, count } })
}

// ---- evaluation ----

/// An image a policy expires, and the rule that expires it (`appliedRulePriority`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub digest: Digest,
    pub rule_priority: u32,
}

/// An image [`preview`] would expire, with what `GetLifecyclePolicyPreview` reports of it.
#[derive(Clone, Debug)]
pub struct PreviewResult {
    pub image: Image,
    pub rule_priority: u32,
}

const DAY: i64 = 86_400;

/// `*` matches any run of characters (none included); everything else matches itself.
pub(crate) fn matches_pattern(pattern: &str, tag: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = tag.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No `*`: the whole tag.
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Rule {
    /// Whether the rule's tag requirements select the image (before counting).
    pub fn selects(&self, image: &Image) -> bool {
        match &self.selection.tag_status {
            // Every prefix (pattern) must be matched by one of the image's tags.
            TagStatus::TaggedPrefixes(prefixes) => {
                prefixes.iter().all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str())))
            }
            TagStatus::TaggedPatterns(patterns) => {
                patterns.iter().all(|p| image.tags.iter().any(|t| matches_pattern(p, t)))
            }
            TagStatus::Untagged => image.tags.is_empty(),
            TagStatus::Any => true,
        }
    }
}

/// Which of a repository's `images` the policy expires at `now`, following ECR's evaluation rules:
///
/// - Every rule looks at all the images its tag requirements select, youngest push first, and
///   marks those beyond `countNumber` (`imageCountMoreThan`) or pushed more than `countNumber`
///   days ago (`sinceImagePushed`). Images a higher-priority rule selected still count here
///   ("identified as if they had not been expired"), but only a rule that is the first to select
///   an image can expire it: an image is expired by exactly one rule or none.
/// - Images in `in_use` (`(repository, digest)`, from [`crate::ImagesInUse`]) are never expired.
/// - An image an index of the repository refers to (`index_children`: `(index, child)`) is kept
///   while that index is kept: it is expired only together with every index that refers to it.
///
/// The result is ordered so that it can be deleted front to back: an index before the images it
/// refers to, otherwise oldest push first.
pub fn evaluate(
    policy: &LifecyclePolicy,
    images: &[Image],
    now: Timestamp,
    in_use: &HashSet<(String, Digest)>,
    index_children: &[(Digest, Digest)],
) -> Vec<Expiry> {
    let mut by_age: Vec<&Image> = images.iter().collect();
    by_age.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then_with(|| a.digest.cmp(&b.digest)));

    let mut seen: HashSet<&Digest> = HashSet::new();
    let mut expired: HashMap<&Digest, u32> = HashMap::new();
    for rule in &policy.rules {
        let selected: Vec<&Image> = by_age.iter().copied().filter(|i| rule.selects(i)).collect();
        let marked: Vec<&Image> = match rule.selection.count {
            Count::ImageCountMoreThan(n) => selected.iter().copied().skip(n as usize).collect(),
            Count::SinceImagePushedDays(days) => selected
                .iter()
                .copied()
                .filter(|i| now.0.saturating_sub(i.pushed_at.0) > i64::from(days) * DAY)
                .collect(),
        };
        for image in marked {
            if !seen.contains(&image.digest) {
                expired.insert(&image.digest, rule.priority);
            }
        }
        seen.extend(selected.iter().map(|i| &i.digest));
    }

    if !in_use.is_empty() {
        for image in images {
            if in_use.contains(&(image.repository.clone(), image.digest.clone())) {
                expired.remove(&image.digest);
            }
        }
    }
    // A kept index keeps its children, and a child kept that way may itself be an index.
    loop {
        let before = expired.len();
        for (index, child) in index_children {
            if !expired.contains_key(index) {
                expired.remove(child);
            }
        }
        if expired.len() == before {
            break;
        }
    }

    // Parents first: an image goes once no index still to be deleted refers to it.
    let mut left: Vec<&Image> = by_age.iter().rev().copied().filter(|i| expired.contains_key(&i.digest)).collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let pending: HashSet<&Digest> = left.iter().map(|i| &i.digest).collect();
        let waiting: HashSet<&Digest> =
            index_children.iter().filter(|(index, _)| pending.contains(index)).map(|(_, child)| child).collect();
        let (ready, rest): (Vec<&Image>, Vec<&Image>) = left.into_iter().partition(|i| !waiting.contains(&i.digest));
        if ready.is_empty() {
            // Only a reference cycle could do this, and digests cannot form one.
            break;
        }
        out.extend(ready.iter().map(|i| Expiry { digest: i.digest.clone(), rule_priority: expired[&i.digest] }));
        left = rest;
    }
    out
}

/// Evaluates `policy` against the repository as it is now, with the images in use.
async fn evaluate_repository(
    registry: &Registry,
    repository: &str,
    policy: &LifecyclePolicy,
) -> Result<(Vec<Image>, Vec<Expiry>), RegistryError> {
    let images = registry.images(repository).await?;
    let children = registry.index_children(repository).await?;
    let in_use = registry.images_in_use();
    let expiries = evaluate(policy, &images, registry.now(), &in_use, &children);
    Ok((images, expiries))
}

/// What `policy` would expire in the repository now, without deleting anything
/// (`StartLifecyclePolicyPreview` / `GetLifecyclePolicyPreview`).
pub async fn preview(
    registry: &Registry,
    repository: &str,
    policy: &LifecyclePolicy,
) -> Result<Vec<PreviewResult>, RegistryError> {
    let (images, expiries) = evaluate_repository(registry, repository, policy).await?;
    let by_digest: HashMap<&Digest, &Image> = images.iter().map(|i| (&i.digest, i)).collect();
    Ok(expiries
        .into_iter()
        .filter_map(|e| {
            by_digest.get(&e.digest).map(|i| PreviewResult { image: (*i).clone(), rule_priority: e.rule_priority })
        })
        .collect())
}

/// Applies the repository's lifecycle policy: deletes the images it expires (through
/// [`Registry::delete_image`], as `BatchDeleteImage` would) and records when it was evaluated
/// (`lastEvaluatedAt`). A repository without a policy is left alone. An image that an index
/// pushed since the evaluation now refers to is skipped. Returns the digests deleted.
///
/// The blobs of expired images become garbage for [`crate::gc`]; the images in use keep their
/// manifests, and so their blobs.
pub async fn apply(registry: &Registry, repository: &str) -> Result<Vec<Digest>, RegistryError> {
    let repo = registry.repository(repository).await?;
    let Some(text) = repo.lifecycle_policy else { return Ok(Vec::new()) };
    let policy = parse(&text)?;
    let (_, expiries) = evaluate_repository(registry, repository, &policy).await?;
    let mut deleted = Vec::with_capacity(expiries.len());
    for expiry in expiries {
        match registry.delete_image(repository, &Reference::Digest(expiry.digest.clone())).await {
            Ok(Ok(digest)) => {
                tracing::info!(repository, %digest, rule_priority = expiry.rule_priority, "lifecycle policy expired an image");
                deleted.push(digest);
            }
            Ok(Err(reason)) => {
                tracing::debug!(repository, digest = %expiry.digest, reason, "lifecycle policy kept an image an index refers to");
            }
            // Deleted meanwhile (BatchDeleteImage): what the policy wanted.
            Err(RegistryError::ImageNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    registry.set_lifecycle_evaluated(repository, registry.now()).await?;
    if !deleted.is_empty() {
        tracing::info!(repository, expired = deleted.len(), "lifecycle policy applied");
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: i64, selection: Value) -> Value {
        serde_json::json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}})
    }

    fn doc(rules: Vec<Value>) -> String {
        serde_json::json!({ "rules": rules }).to_string()
    }

    #[test]
    fn accepts_the_documented_forms() {
        let text = doc(vec![
            rule(
                1,
                serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 3}),
            ),
            rule(
                2,
                serde_json::json!({"tagStatus": "tagged", "tagPatternList": ["*test*1*2*3", "v*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}),
            ),
            rule(
                5,
                serde_json::json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}),
            ),
            rule(10, serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 100})),
        ]);
        let p = parse(&text).expect("valid");
        assert_eq!(p.rules.iter().map(|r| r.priority).collect::<Vec<_>>(), vec![1, 2, 5, 10]);
        assert_eq!(p.rules[0].selection.tag_status, TagStatus::TaggedPrefixes(vec!["prod".into()]));
        assert_eq!(p.rules[0].selection.count, Count::ImageCountMoreThan(3));
        assert_eq!(p.rules[1].selection.count, Count::SinceImagePushedDays(14));
        assert_eq!(p.rules[2].selection.tag_status, TagStatus::Untagged);
        assert_eq!(p.rules[3].selection.tag_status, TagStatus::Any);

        // Rules are sorted by priority whatever their order in the document; descriptions are kept.
        let text = serde_json::json!({"rules": [
            {"rulePriority": 7, "description": "last", "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 3, "selection": {"tagStatus": "tagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]})
        .to_string();
        let p = parse(&text).expect("valid");
        assert_eq!(p.rules[0].priority, 3);
        assert_eq!(p.rules[1].description.as_deref(), Some("last"));
    }

    #[test]
    fn rejects_what_ecr_rejects() {
        let sel = |s: Value| doc(vec![rule(1, s)]);
        let cases: Vec<(&str, String)> = vec![
            ("not json", "{".into()),
            ("not an object", "[]".into()),
            ("no rules", "{}".into()),
            ("empty rules", doc(vec![])),
            ("unknown top-level key", r#"{"rules":[],"x":1}"#.into()),
            (
                "priority 0",
                doc(vec![rule(0, serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}))]),
            ),
            (
                "negative priority",
                doc(vec![rule(-1, serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}))]),
            ),
            (
                "priority not an integer",
                serde_json::json!({"rules": [{"rulePriority": "1", "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]}).to_string(),
            ),
            (
                "fractional count",
                sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1.5})),
            ),
            (
                "duplicate priority",
                doc(vec![
                    rule(1, serde_json::json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
                    rule(1, serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 1})),
                ]),
            ),
            ("bad tagStatus", sel(serde_json::json!({"tagStatus": "TAGGED", "countType": "imageCountMoreThan", "countNumber": 1}))),
            ("tagged without a filter", sel(serde_json::json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}))),
            (
                "tagged with an empty prefix list",
                sel(serde_json::json!({"tagStatus": "tagged", "tagPrefixList": [], "countType": "imageCountMoreThan", "countNumber": 1})),
            ),
            (
                "tagged with both lists",
                sel(serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["a"], "tagPatternList": ["a*"], "countType": "imageCountMoreThan", "countNumber": 1})),
            ),
            (
                "five wildcards",
                sel(serde_json::json!({"tagStatus": "tagged", "tagPatternList": ["test*1*2*3*4*5"], "countType": "imageCountMoreThan", "countNumber": 1})),
            ),
            (
                "untagged with prefixes",
                sel(serde_json::json!({"tagStatus": "untagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1})),
            ),
            (
                "any with patterns",
                sel(serde_json::json!({"tagStatus": "any", "tagPatternList": ["a*"], "countType": "imageCountMoreThan", "countNumber": 1})),
            ),
            ("bad countType", sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountLessThan", "countNumber": 1}))),
            ("countNumber 0", sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}))),
            ("no countNumber", sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan"}))),
            (
                "countUnit with imageCountMoreThan",
                sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 1})),
            ),
            ("sinceImagePushed without countUnit", sel(serde_json::json!({"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1}))),
            (
                "countUnit hours",
                sel(serde_json::json!({"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "hours", "countNumber": 1})),
            ),
            (
                "unknown selection key",
                sel(serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1, "x": 1})),
            ),
            (
                "action not expire",
                serde_json::json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "archive"}}]}).to_string(),
            ),
            (
                "no action",
                serde_json::json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}}]}).to_string(),
            ),
            (
                "any not last",
                doc(vec![
                    rule(1, serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})),
                    rule(2, serde_json::json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
                ]),
            ),
            (
                "two untagged rules",
                doc(vec![
                    rule(1, serde_json::json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})),
                    rule(2, serde_json::json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1})),
                ]),
            ),
            (
                "two rules with the same prefixes",
                doc(vec![
                    rule(1, serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["a", "b"], "countType": "imageCountMoreThan", "countNumber": 1})),
                    rule(2, serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["b", "a"], "countType": "imageCountMoreThan", "countNumber": 5})),
                ]),
            ),
            (
                "two any rules",
                doc(vec![
                    rule(1, serde_json::json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})),
                    rule(2, serde_json::json!({"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1})),
                ]),
            ),
        ];
        for (what, text) in cases {
            match parse(&text) {
                Err(RegistryError::InvalidParameter(m)) => {
                    assert!(
                        m.starts_with("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '"),
                        "{what}: {m}"
                    );
                }
                other => panic!("{what}: expected InvalidParameter, got {other:?}"),
            }
        }
    }
}
