//! The `Condition` element: operators, the request's condition keys, and how they meet.
//!
//! Logic (AWS's "Condition operators" and "Conditions with multiple context keys or values"):
//! - every operator block must match (AND), every key within a block must match (AND), and the
//!   values listed for one key are alternatives (OR); for a negated operator (`StringNotEquals`,
//!   `NotIpAddress`, `ArnNotLike` …) the request value must match NONE of them (NOR);
//! - a key absent from the request makes a positive operator false and a negated one true, unless
//!   the operator ends in `IfExists`, which is then true; `Null` tests presence itself;
//! - `ForAnyValue:` is true when at least one request value passes (false when the key is absent),
//!   `ForAllValues:` when every request value passes (true when the key is absent or empty);
//! - without a set qualifier a key that carries several values passes a positive operator when
//!   ANY of them matches, and a negated operator when NONE of them matches (the negation of the
//!   positive result, so `StringNotEquals` = not `StringEquals` for every shape of request).

use std::collections::HashMap;
use std::net::IpAddr;

use berth_aws::time::Timestamp;

use super::json::Json;
use super::pattern::{Pattern, Piece, Syntax};
use super::MalformedPolicy;

/// The request's condition keys (`aws:SourceIp`, `token.actions.githubusercontent.com:sub`,
/// `aws:PrincipalTag/team` …), also the source of policy variables. Key names compare
/// case-insensitively; a key holds one value or several (multi-valued keys such as `aws:TagKeys`).
/// A key set to an empty list is treated as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConditionKeys {
    keys: HashMap<std::borrow::Cow<'static, str>, Vec<String>>,
}

impl ConditionKeys {
    pub fn new() -> ConditionKeys {
        ConditionKeys::default()
    }

    /// Room for `n` keys without growing (the keys of every request are built on its hot path).
    pub fn with_capacity(n: usize) -> ConditionKeys {
        ConditionKeys { keys: HashMap::with_capacity(n) }
    }

    /// Sets a single-valued key, replacing what it held.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut ConditionKeys {
        self.keys.insert(std::borrow::Cow::Owned(key.to_lowercase()), vec![value.into()]);
        self
    }

    /// [`ConditionKeys::set`] for a key name that is already lower case and static
    /// (`aws:sourceip`): no allocation for the name.
    pub fn set_static(&mut self, key_lowercase: &'static str, value: impl Into<String>) -> &mut ConditionKeys {
        debug_assert_eq!(key_lowercase, key_lowercase.to_lowercase());
        self.keys.insert(std::borrow::Cow::Borrowed(key_lowercase), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key, replacing what it held.
    pub fn set_multi<I, S>(&mut self, key: &str, values: I) -> &mut ConditionKeys
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keys.insert(std::borrow::Cow::Owned(key.to_lowercase()), values.into_iter().map(Into::into).collect());
        self
    }

    /// [`ConditionKeys::set`], by value, for building in one expression.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> ConditionKeys {
        self.set(key, value);
        self
    }

    /// [`ConditionKeys::set_multi`], by value.
    pub fn with_multi<I, S>(mut self, key: &str, values: I) -> ConditionKeys
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set_multi(key, values);
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut ConditionKeys {
        self.keys.remove(key.to_lowercase().as_str());
        self
    }

    /// The key's values; `None` when absent (or set to an empty list).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        if key.chars().any(|c| c.to_lowercase().ne(std::iter::once(c))) {
            self.get_lowercase(&key.to_lowercase())
        } else {
            self.get_lowercase(key)
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Lookup with a key already lower-cased (the policy side is, at parse time): no allocation.
    pub(crate) fn get_lowercase(&self, key: &str) -> Option<&[String]> {
        self.keys.get(key).map(Vec::as_slice).filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    /// `ArnEquals` and `ArnLike` are the same test in AWS: component-wise, with wildcards.
    ArnLike,
    Null,
}

/// The operator names, as AWS spells them, with their base test and whether it is negated.
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::StringEquals, false),
    ("StringNotEquals", Base::StringEquals, true),
    ("StringEqualsIgnoreCase", Base::StringEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Base::StringEqualsIgnoreCase, true),
    ("StringLike", Base::StringLike, false),
    ("StringNotLike", Base::StringLike, true),
    ("NumericEquals", Base::NumericEquals, false),
    ("NumericNotEquals", Base::NumericEquals, true),
    ("NumericLessThan", Base::NumericLessThan, false),
    ("NumericLessThanEquals", Base::NumericLessThanEquals, false),
    ("NumericGreaterThan", Base::NumericGreaterThan, false),
    ("NumericGreaterThanEquals", Base::NumericGreaterThanEquals, false),
    ("DateEquals", Base::DateEquals, false),
    ("DateNotEquals", Base::DateEquals, true),
    ("DateLessThan", Base::DateLessThan, false),
    ("DateLessThanEquals", Base::DateLessThanEquals, false),
    ("DateGreaterThan", Base::DateGreaterThan, false),
    ("DateGreaterThanEquals", Base::DateGreaterThanEquals, false),
    ("Bool", Base::Bool, false),
    ("BinaryEquals", Base::BinaryEquals, false),
    ("IpAddress", Base::IpAddress, false),
    ("NotIpAddress", Base::IpAddress, true),
    ("ArnEquals", Base::ArnLike, false),
    ("ArnLike", Base::ArnLike, false),
    ("ArnNotEquals", Base::ArnLike, true),
    ("ArnNotLike", Base::ArnLike, true),
    ("Null", Base::Null, false),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQualifier {
    /// No qualifier: the single-valued reading.
    Single,
    ForAnyValue,
    ForAllValues,
}

/// One key tested by one operator: `"StringLike": {"token.actions.githubusercontent.com:sub": […]}`.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    base: Base,
    negated: bool,
    set: SetQualifier,
    if_exists: bool,
    /// Lower-cased.
    key: Box<str>,
    values: Values,
}

/// A value whose type is known once variables are substituted.
#[derive(Clone, Debug)]
enum Typed<T> {
    Lit(T),
    /// Not a value of the operator's type: matches nothing.
    Invalid,
    /// Contains policy variables: substituted, then parsed, at evaluation.
    Template(Pattern),
}

impl<T: Copy> Typed<T> {
    fn parse(text: &str, variables: bool, parse: fn(&str) -> Option<T>) -> Typed<T> {
        let pattern = Pattern::parse(text, Syntax { wildcards: false, variables, ignore_case: false });
        if pattern.has_variables() {
            return Typed::Template(pattern);
        }
        match pattern.as_literal().and_then(parse) {
            Some(v) => Typed::Lit(v),
            None => Typed::Invalid,
        }
    }

    fn get(&self, keys: &ConditionKeys, parse: fn(&str) -> Option<T>) -> Option<T> {
        match self {
            Typed::Lit(v) => Some(*v),
            Typed::Invalid => None,
            Typed::Template(p) => p.render(keys).and_then(|text| parse(&text)),
        }
    }
}

#[derive(Clone, Debug)]
enum Values {
    /// String operators and `BinaryEquals`.
    Text(Box<[Pattern]>),
    /// `None`: not an ARN pattern, matches nothing.
    Arn(Box<[Option<ArnPattern>]>),
    Number(Box<[Typed<f64>]>),
    Date(Box<[Typed<i64>]>),
    Bool(Box<[Typed<bool>]>),
    Ip(Box<[Typed<Cidr>]>),
    Null(Box<[Option<bool>]>),
}

/// A condition value as written: strings, numbers and booleans all read as their text.
fn value_texts(value: &Json) -> Result<Vec<String>, MalformedPolicy> {
    fn scalar(v: &Json) -> Option<String> {
        match v {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match value {
        Json::Array(items) => items.iter().map(|v| scalar(v).ok_or_else(MalformedPolicy::syntax)).collect(),
        v => scalar(v).map(|s| vec![s]).ok_or_else(MalformedPolicy::syntax),
    }
}

pub(crate) const VENDOR_MESSAGE: &str = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";

/// Parses a statement's `Condition` element.
pub(crate) fn parse_conditions(element: &Json, variables: bool) -> Result<Vec<Condition>, MalformedPolicy> {
    let Json::Object(blocks) = element else {
        return Err(MalformedPolicy::syntax());
    };
    let mut conditions = Vec::new();
    for (operator, block) in blocks {
        let (base, negated, set, if_exists) =
            parse_operator(operator).ok_or_else(|| MalformedPolicy(format!("Invalid Condition type : {operator}")))?;
        let Json::Object(entries) = block else {
            return Err(MalformedPolicy::syntax());
        };
        for (key, value) in entries {
            match key.split_once(':') {
                Some((vendor, name)) if !vendor.is_empty() && !name.is_empty() => {}
                _ => return Err(MalformedPolicy(VENDOR_MESSAGE.to_owned())),
            }
            let texts = value_texts(value)?;
            let values = parse_values(base, &texts, variables);
            conditions.push(Condition { base, negated, set, if_exists, key: key.to_lowercase().into(), values });
        }
    }
    Ok(conditions)
}

fn parse_operator(name: &str) -> Option<(Base, bool, SetQualifier, bool)> {
    let mut rest = name;
    let mut set = SetQualifier::Single;
    for (prefix, qualifier) in
        [("ForAnyValue:", SetQualifier::ForAnyValue), ("ForAllValues:", SetQualifier::ForAllValues)]
    {
        if rest.len() >= prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix) {
            rest = &rest[prefix.len()..];
            set = qualifier;
            break;
        }
    }
    let suffix = "IfExists";
    let mut if_exists = false;
    if rest.len() > suffix.len() && rest.is_char_boundary(rest.len() - suffix.len()) {
        let (head, tail) = rest.split_at(rest.len() - suffix.len());
        if tail.eq_ignore_ascii_case(suffix) {
            rest = head;
            if_exists = true;
        }
    }
    let &(_, base, negated) = OPERATORS.iter().find(|(op, _, _)| op.eq_ignore_ascii_case(rest))?;
    if base == Base::Null && (if_exists || set != SetQualifier::Single) {
        return None;
    }
    Some((base, negated, set, if_exists))
}

fn parse_values(base: Base, texts: &[String], variables: bool) -> Values {
    let text = |wildcards: bool, ignore_case: bool| -> Values {
        let syntax = Syntax { wildcards, variables, ignore_case };
        Values::Text(texts.iter().map(|t| Pattern::parse(t, syntax)).collect())
    };
    match base {
        Base::StringEquals | Base::BinaryEquals => text(false, false),
        Base::StringEqualsIgnoreCase => text(false, true),
        Base::StringLike => text(true, false),
        Base::ArnLike => {
            let syntax = Syntax { wildcards: true, variables, ignore_case: false };
            Values::Arn(texts.iter().map(|t| ArnPattern::parse(&Pattern::parse(t, syntax))).collect())
        }
        Base::NumericEquals
        | Base::NumericLessThan
        | Base::NumericLessThanEquals
        | Base::NumericGreaterThan
        | Base::NumericGreaterThanEquals => {
            Values::Number(texts.iter().map(|t| Typed::parse(t, variables, parse_number)).collect())
        }
        Base::DateEquals
        | Base::DateLessThan
        | Base::DateLessThanEquals
        | Base::DateGreaterThan
        | Base::DateGreaterThanEquals => {
            Values::Date(texts.iter().map(|t| Typed::parse(t, variables, parse_date)).collect())
        }
        Base::Bool => Values::Bool(texts.iter().map(|t| Typed::parse(t, variables, parse_bool)).collect()),
        Base::IpAddress => Values::Ip(texts.iter().map(|t| Typed::parse(t, variables, Cidr::parse)).collect()),
        Base::Null => Values::Null(texts.iter().map(|t| parse_bool(t)).collect()),
    }
}

impl Condition {
    pub(crate) fn matches(&self, keys: &ConditionKeys) -> bool {
        let request = keys.get_lowercase(&self.key);
        if let Values::Null(expected) = &self.values {
            let absent = request.is_none();
            return expected.contains(&Some(absent));
        }
        match (self.set, request) {
            (SetQualifier::Single, None) => self.if_exists || self.negated,
            (SetQualifier::Single, Some(values)) => values.iter().any(|v| self.positive(v, keys)) != self.negated,
            (SetQualifier::ForAnyValue, None) => self.if_exists,
            (SetQualifier::ForAnyValue, Some(values)) => values.iter().any(|v| self.positive(v, keys) != self.negated),
            (SetQualifier::ForAllValues, None) => true,
            (SetQualifier::ForAllValues, Some(values)) => values.iter().all(|v| self.positive(v, keys) != self.negated),
        }
    }

    /// The un-negated test of one request value against the policy's values (OR).
    fn positive(&self, request: &str, keys: &ConditionKeys) -> bool {
        match &self.values {
            Values::Text(patterns) => patterns.iter().any(|p| p.matches(request, keys)),
            Values::Arn(patterns) => match ArnParts::split(request) {
                Some(parts) => patterns.iter().flatten().any(|p| p.matches(&parts, keys)),
                None => false,
            },
            Values::Number(values) => {
                let Some(x) = parse_number(request) else {
                    return false;
                };
                values.iter().any(|v| {
                    v.get(keys, parse_number).is_some_and(|y| match self.base {
                        Base::NumericLessThan => x < y,
                        Base::NumericLessThanEquals => x <= y,
                        Base::NumericGreaterThan => x > y,
                        Base::NumericGreaterThanEquals => x >= y,
                        _ => x == y,
                    })
                })
            }
            Values::Date(values) => {
                let Some(x) = parse_date(request) else {
                    return false;
                };
                values.iter().any(|v| {
                    v.get(keys, parse_date).is_some_and(|y| match self.base {
                        Base::DateLessThan => x < y,
                        Base::DateLessThanEquals => x <= y,
                        Base::DateGreaterThan => x > y,
                        Base::DateGreaterThanEquals => x >= y,
                        _ => x == y,
                    })
                })
            }
            Values::Bool(values) => {
                let Some(x) = parse_bool(request) else {
                    return false;
                };
                values.iter().any(|v| v.get(keys, parse_bool) == Some(x))
            }
            Values::Ip(values) => {
                let Some(ip) = parse_ip(request) else {
                    return false;
                };
                values.iter().any(|v| v.get(keys, Cidr::parse).is_some_and(|cidr| cidr.contains(ip)))
            }
            Values::Null(_) => false,
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    if !text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Seconds since the epoch, from ISO 8601 (`2026-01-02T03:04:05Z`, `2026-01-02`) or epoch seconds
/// (`1767323045`, fractions truncated), the two forms AWS accepts.
fn parse_date(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    if !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && frac.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = whole.parse().ok()?;
        return Some(if text.starts_with('-') { -secs } else { secs });
    }
    Timestamp::parse_iso8601(text).map(|t| t.0)
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// An `IpAddress` value: `203.0.113.0/24`, `2001:DB8:1234:5678::/64`, or one address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (addr, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        let network = parse_ip(addr)?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A request ARN cut into its six colon-separated components (the last keeps its colons).
pub(crate) struct ArnParts<'a> {
    text: &'a str,
    /// Byte offsets where components 2..=6 start.
    starts: [usize; 5],
}

impl<'a> ArnParts<'a> {
    pub(crate) fn split(text: &'a str) -> Option<ArnParts<'a>> {
        let mut starts = [0; 5];
        let mut found = 0;
        for (i, b) in text.bytes().enumerate() {
            if b == b':' {
                starts[found] = i + 1;
                found += 1;
                if found == 5 {
                    return Some(ArnParts { text, starts });
                }
            }
        }
        None
    }

    fn component(&self, i: usize) -> &'a str {
        let start = if i == 0 { 0 } else { self.starts[i - 1] };
        let end = if i == 5 { self.text.len() } else { self.starts[i] - 1 };
        &self.text[start..end]
    }

    /// From the start of component `i` to the end of the ARN.
    fn rest(&self, i: usize) -> &'a str {
        let start = if i == 0 { 0 } else { self.starts[i - 1] };
        &self.text[start..]
    }
}

/// An `Arn*` condition value, cut into components like the ARN it is compared with. A pattern with
/// fewer than six components whose last component ends in `*` lets that `*` run to the end of the
/// ARN (as in the `Resource` element); otherwise it must have all six.
#[derive(Clone, Debug)]
pub(crate) struct ArnPattern {
    components: Box<[Pattern]>,
}

impl ArnPattern {
    fn parse(pattern: &Pattern) -> Option<ArnPattern> {
        let mut components: Vec<Vec<Piece>> = vec![Vec::new()];
        for piece in pattern.pieces() {
            match piece {
                Piece::Lit(lit) => {
                    let mut rest: &str = lit;
                    while components.len() < 6 {
                        let Some(i) = rest.find(':') else {
                            break;
                        };
                        if i > 0 {
                            components.last_mut()?.push(Piece::Lit(rest[..i].into()));
                        }
                        components.push(Vec::new());
                        rest = &rest[i + 1..];
                    }
                    if !rest.is_empty() {
                        components.last_mut()?.push(Piece::Lit(rest.into()));
                    }
                }
                other => components.last_mut()?.push(other.clone()),
            }
        }
        if components.len() < 6 && components.last()?.last() != Some(&Piece::Star) {
            return None;
        }
        Some(ArnPattern { components: components.into_iter().map(|c| Pattern::from_pieces(c, false)).collect() })
    }

    fn matches(&self, arn: &ArnParts<'_>, keys: &ConditionKeys) -> bool {
        let last = self.components.len() - 1;
        self.components.iter().enumerate().all(|(i, pattern)| {
            let text = if i == last { arn.rest(i) } else { arn.component(i) };
            pattern.matches(text, keys)
        })
    }
}
