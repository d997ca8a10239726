//! Helpers shared by the wire tests: a parser for the test suite's raw HTTP requests, a minimal
//! executor for the gateway's futures, mutation helpers and a strict-enough XML checker.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use berth_aws::sigv4::{RequestParts, SigningCredentials};
use berth_aws::time::Timestamp;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The suite's standard example credentials.
pub const EXAMPLE_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2015-08-30T12:36:00Z, the time most vectors are signed at.
pub fn t0() -> Timestamp {
    ts("20150830T123600Z")
}

pub fn ts(amz_date: &str) -> Timestamp {
    Timestamp::parse_amz_date(amz_date).unwrap_or_else(|| panic!("bad test date {amz_date}"))
}

pub fn creds(access_key_id: &str, secret: &str, token: Option<&str>) -> SigningCredentials {
    SigningCredentials {
        access_key_id: access_key_id.into(),
        secret_access_key: secret.into(),
        session_token: token.map(str::to_string),
    }
}

/// An HTTP request as the test suite writes it: request line, headers, blank line, body.
#[derive(Clone, Debug)]
pub struct RawRequest {
    pub method: String,
    /// Still percent-encoded, exactly as on the request line.
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    /// `METHOD PATH[?QUERY] [HTTP/1.1]`, then `Name:value` lines (a line starting with whitespace
    /// continues the previous value: obs-fold, joined with one space), a blank line and the body.
    pub fn parse(text: &str) -> RawRequest {
        let (head, body) = match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text.trim_end_matches('\n'), ""),
        };
        let mut lines = head.split('\n');
        let request_line = lines.next().expect("request line");
        let (method, target) = request_line.split_once(' ').expect("method and target");
        let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));

        let mut fields: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                let (_, value) = fields.last_mut().expect("continuation line after a header");
                value.push(' ');
                value.push_str(line.trim());
            } else {
                let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("header line {line:?}"));
                fields.push((name.to_string(), value.to_string()));
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_bytes(value.as_bytes()).expect("header value"),
            );
        }
        RawRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    /// Replaces every value of `name` with `value`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// Changes one character of `s`: the last ASCII letter or digit becomes the next one (`9`→`0`,
/// `z`→`a`, `Z`→`A`). Letter case is kept, so the change survives case-insensitive comparison.
pub fn bump_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    match chars.iter().rposition(|c| c.is_ascii_alphanumeric()) {
        Some(i) => {
            let c = chars[i];
            chars[i] = match c {
                '9' => '0',
                'z' => 'a',
                'Z' => 'A',
                c => (c as u8 + 1) as char,
            };
            chars.into_iter().collect()
        }
        None => format!("{s}x"),
    }
}

/// Replaces the hex digit at `index` of a signature with a different hex digit.
pub fn flip_hex_digit(signature: &str, index: usize) -> String {
    let mut out: Vec<char> = signature.chars().collect();
    let i = index % out.len();
    let v = out[i].to_digit(16).expect("hex digit");
    out[i] = std::char::from_digit((v + 1) % 16, 16).expect("digit");
    out.into_iter().collect()
}

/// In a raw query string, applies `f` to the (still encoded) value of parameter `name`.
pub fn edit_query_param(query: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let mut found = false;
    let out: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => {
                found = true;
                format!("{k}={}", f(v))
            }
            _ => pair.to_string(),
        })
        .collect();
    assert!(found, "no parameter {name} in {query}");
    out.join("&")
}

/// Removes parameter `name` from a raw query string.
pub fn remove_query_param(query: &str, name: &str) -> String {
    query.split('&').filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name).collect::<Vec<_>>().join("&")
}

/// Runs a future to completion on this thread (the gateway's futures need no reactor).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Checks that `text` is one well-formed XML element tree (tags balance, no stray `<` or `&`,
/// attribute values quoted) and returns the root element's name. Enough for the shapes AWS
/// responses use: no comments, CDATA, DTDs or processing instructions.
pub fn check_xml(text: &str) -> Result<String, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut root: Option<String> = None;
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>').ok_or("unterminated tag")?;
            let tag = &after[..end];
            rest = &after[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or_else(|| format!("close tag </{name}> without an open tag"))?;
                if open != name.trim() {
                    return Err(format!("</{name}> closes <{open}>"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "_-:.".contains(c)) {
                    return Err(format!("bad element name {name:?}"));
                }
                check_attrs(attrs)?;
                if stack.is_empty() {
                    if root.is_some() {
                        return Err("more than one root element".into());
                    }
                    root = Some(name.to_string());
                }
                if !self_closing {
                    stack.push(name);
                }
            }
        } else {
            if stack.is_empty() {
                return Err(format!("text outside the root element: {rest:.40}"));
            }
            let end = rest.find('<').unwrap_or(rest.len());
            check_text(&rest[..end])?;
            rest = &rest[end..];
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> is never closed"));
    }
    root.ok_or_else(|| "no element".into())
}

fn check_attrs(mut attrs: &str) -> Result<(), String> {
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return Ok(());
        }
        let (name, rest) = attrs.split_once('=').ok_or_else(|| format!("attribute without value: {attrs}"))?;
        if name.trim().is_empty() {
            return Err("attribute without name".into());
        }
        let rest = rest.strip_prefix('"').ok_or("attribute value not quoted")?;
        let end = rest.find('"').ok_or("unterminated attribute value")?;
        check_text(&rest[..end])?;
        attrs = &rest[end + 1..];
    }
}

fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or("unterminated entity")?;
        let entity = &after[..end];
        let known = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity.strip_prefix("#x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || entity.strip_prefix('#').is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !known {
            return Err(format!("unknown entity &{entity};"));
        }
        rest = &after[end + 1..];
    }
    if text.contains('>') {
        // Legal in XML but never written by berth's escaper: a sign of unescaped input.
        return Err(format!("unescaped '>' in {text:.40}"));
    }
    Ok(())
}

/// The text of the first `<tag>…</tag>` in `xml` (no attributes on `tag`).
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

#[test]
fn request_file_parser_handles_folding_bodies_and_bare_request_lines() {
    let r = RawRequest::parse("GET /a b/?x=1 HTTP/1.1\nHost:h\nMy-H:v1\n  v2\n\tv3\nMy-H:w\n\nbody\n\nmore");
    assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_str()), ("GET", "/a b/", "x=1"));
    let values: Vec<_> = r.headers.get_all("my-h").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(values, ["v1 v2 v3", "w"]);
    assert_eq!(r.body, b"body\n\nmore");

    let r = RawRequest::parse("POST /p\nHost:h\n");
    assert_eq!((r.method.as_str(), r.path.as_str(), r.query.as_str()), ("POST", "/p", ""));
    assert_eq!(r.header("host").as_deref(), Some("h"));
    assert!(r.body.is_empty());
}

#[test]
fn xml_checker_accepts_aws_shapes_and_rejects_broken_ones() {
    assert_eq!(check_xml("<A xmlns=\"u\"><B>x &amp; y</B><C/></A>").as_deref(), Ok("A"));
    for bad in ["<A><B></A></B>", "<A>", "<A>x & y</A>", "<A></A><B></B>", "text", "<A x=y></A>", "<A>a<b</A>"] {
        assert!(check_xml(bad).is_err(), "{bad}");
    }
}

#[test]
fn mutation_helpers_change_exactly_one_character() {
    assert_eq!(bump_char("value1"), "value2");
    assert_eq!(bump_char("\"a b c\""), "\"a b d\"");
    assert_eq!(bump_char("z9"), "z0");
    assert_eq!(bump_char("/"), "/x");
    assert_eq!(flip_hex_digit("0af", 1), "0bf");
    assert_eq!(flip_hex_digit("0af", 2), "0a0");
    assert_eq!(edit_query_param("a=1&b=2", "b", |v| format!("{v}3")), "a=1&b=23");
    assert_eq!(remove_query_param("a=1&b=2&c", "b"), "a=1&c");
}

/// A request signed with [`berth_aws::sigv4::sign`]: `host` is `example.amazonaws.com` unless given.
#[allow(clippy::too_many_arguments)]
pub fn signed_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    creds: &SigningCredentials,
    region: &str,
    service: &str,
    at: Timestamp,
) -> RawRequest {
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    berth_aws::sigv4::sign(method, path, query, &mut map, body, creds, region, service, at);
    RawRequest { method: method.into(), path: path.into(), query: query.into(), headers: map, body: body.to_vec() }
}

/// A presigned request made with [`berth_aws::sigv4::presign`] for host `example.amazonaws.com`.
#[allow(clippy::too_many_arguments)]
pub fn presigned_request(
    method: &str,
    path: &str,
    query: &str,
    creds: &SigningCredentials,
    region: &str,
    service: &str,
    at: Timestamp,
    expires_seconds: i64,
) -> RawRequest {
    let host = "example.amazonaws.com";
    let query = berth_aws::sigv4::presign(method, path, query, host, creds, region, service, at, expires_seconds);
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(host));
    RawRequest { method: method.into(), path: path.into(), query, headers, body: Vec::new() }
}

/// Parses and verifies `req`.
pub fn check(
    req: &RawRequest,
    secret: &str,
    now: Timestamp,
) -> Result<berth_aws::sigv4::SignatureClaim, berth_aws::sigv4::SigV4Error> {
    let claim = berth_aws::sigv4::parse(&req.parts())?.ok_or(berth_aws::sigv4::SigV4Error::Missing)?;
    berth_aws::sigv4::verify(&req.parts(), &claim, secret, now)?;
    Ok(claim)
}
