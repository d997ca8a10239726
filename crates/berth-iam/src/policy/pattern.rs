//! Patterns, parsed once when a policy is written and matched on every request: literal runs,
//! the `*` and `?` wildcards, and policy variables (`${aws:username}`, `${key, 'default'}`, and the
//! escapes `${*}`, `${?}`, `${$}`).
//!
//! Matching is the classic two-pointer glob with backtracking to the last `*`, over pieces instead of
//! characters: no regex, no allocation. A variable is looked up in the request's [`ConditionKeys`] and
//! its value is compared literally (a `*` inside a user name is not a wildcard).

use std::borrow::Cow;

use super::condition::ConditionKeys;

/// How a text is read into a [`Pattern`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (Action, Resource, StringLike, Arn*); otherwise they are literal.
    pub(crate) wildcards: bool,
    /// `${…}` is a policy variable (documents with `Version` 2012-10-17); otherwise literal.
    pub(crate) variables: bool,
    /// Literals compare case-insensitively (Action, StringEqualsIgnoreCase).
    pub(crate) ignore_case: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(Box<str>),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
    Var(Variable),
}

/// `${key}` or `${key, 'default'}`; `key` is stored lower-cased, keys compare case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Variable {
    pub(crate) key: Box<str>,
    pub(crate) default: Option<Box<str>>,
}

impl Variable {
    /// The variable's value: the key's value when it has exactly one (AWS does not substitute
    /// multi-valued keys), else the default, else `None` (the value containing it matches nothing).
    pub(crate) fn resolve<'a>(&'a self, keys: &'a ConditionKeys) -> Option<&'a str> {
        match keys.get_lowercase(&self.key) {
            Some([one]) => Some(one.as_str()),
            _ => self.default.as_deref(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Box<[Piece]>,
    ignore_case: bool,
    shape: Shape,
}

/// Shortcuts for the common pattern forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `*`: matches everything.
    Any,
    /// One literal, or nothing at all: an (optionally case-insensitive) string comparison.
    Exact,
    General,
}

impl Pattern {
    pub(crate) fn parse(text: &str, syntax: Syntax) -> Pattern {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                if let Some((var, len)) = parse_variable(rest) {
                    match var {
                        VarToken::Literal(ch) => lit.push(ch),
                        VarToken::Var(v) => {
                            flush(&mut lit, &mut pieces);
                            pieces.push(Piece::Var(v));
                        }
                    }
                    rest = &rest[len..];
                    continue;
                }
            }
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut lit, &mut pieces);
                    if pieces.last() != Some(&Piece::Star) {
                        pieces.push(Piece::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut lit, &mut pieces);
                    pieces.push(Piece::One);
                }
                _ => lit.push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut lit, &mut pieces);
        Pattern::from_pieces(pieces, syntax.ignore_case)
    }

    pub(crate) fn has_variables(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(_)))
    }

    /// The pattern's only literal, when it is exactly one literal without wildcards or variables.
    pub(crate) fn as_literal(&self) -> Option<&str> {
        match &*self.pieces {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    pub(crate) fn from_pieces(pieces: Vec<Piece>, ignore_case: bool) -> Pattern {
        let shape = match pieces.as_slice() {
            [Piece::Star] => Shape::Any,
            [] | [Piece::Lit(_)] => Shape::Exact,
            _ => Shape::General,
        };
        Pattern { pieces: pieces.into_boxed_slice(), ignore_case, shape }
    }

    /// Does `text` match? Variables are resolved in `keys`; an unresolvable one means no match.
    pub(crate) fn matches(&self, text: &str, keys: &ConditionKeys) -> bool {
        match self.shape {
            Shape::Any => true,
            Shape::Exact => match self.pieces.first() {
                Some(Piece::Lit(lit)) => lit_eq(lit, text, self.ignore_case),
                _ => text.is_empty(),
            },
            Shape::General => glob(&self.pieces, text, self.ignore_case, keys),
        }
    }

    /// The text the pattern stands for once its variables are substituted (for the typed condition
    /// operators, whose values are parsed after substitution). `None` when a variable is unresolvable.
    pub(crate) fn render<'a>(&'a self, keys: &'a ConditionKeys) -> Option<Cow<'a, str>> {
        match &*self.pieces {
            [] => Some(Cow::Borrowed("")),
            [Piece::Lit(s)] => Some(Cow::Borrowed(s)),
            [Piece::Var(v)] => v.resolve(keys).map(Cow::Borrowed),
            pieces => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Lit(s) => out.push_str(s),
                        Piece::Star => out.push('*'),
                        Piece::One => out.push('?'),
                        Piece::Var(v) => out.push_str(v.resolve(keys)?),
                    }
                }
                Some(Cow::Owned(out))
            }
        }
    }
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit).into_boxed_str()));
    }
}

enum VarToken {
    /// `${*}`, `${?}`, `${$}`: the character itself, never special.
    Literal(char),
    Var(Variable),
}

/// Reads `${…}` at the start of `text`; `None` when it is not a well-formed variable, in which case
/// the characters are taken literally. Returns the token and the bytes it spans.
fn parse_variable(text: &str) -> Option<(VarToken, usize)> {
    let body_start = 2;
    let close = text[body_start..].find('}')? + body_start;
    let body = &text[body_start..close];
    match body {
        "*" => return Some((VarToken::Literal('*'), close + 1)),
        "?" => return Some((VarToken::Literal('?'), close + 1)),
        "$" => return Some((VarToken::Literal('$'), close + 1)),
        _ => {}
    }
    if let Some(comma) = body.find(',') {
        // `${key, 'default'}`: the default is single-quoted and may contain `}` and `''` (a quote).
        let key = body[..comma].trim();
        let after = text[body_start + comma + 1..].trim_start();
        let quoted = after.strip_prefix('\'')?;
        let mut default = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            if c == '\'' {
                if quoted[i + 1..].starts_with('\'') {
                    default.push('\'');
                    chars.next();
                    continue;
                }
                break i + 1;
            }
            default.push(c);
        };
        let tail = &quoted[end..];
        let trimmed = tail.trim_start();
        let closing = trimmed.strip_prefix('}')?;
        if !valid_key(key) {
            return None;
        }
        let consumed = text.len() - closing.len();
        let var = Variable { key: key.to_lowercase().into_boxed_str(), default: Some(default.into_boxed_str()) };
        return Some((VarToken::Var(var), consumed));
    }
    let key = body.trim();
    if !valid_key(key) {
        return None;
    }
    Some((VarToken::Var(Variable { key: key.to_lowercase().into_boxed_str(), default: None }), close + 1))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains(|c: char| c.is_whitespace() || matches!(c, '$' | '{' | '}' | '\''))
}

fn lit_eq(lit: &str, text: &str, ignore_case: bool) -> bool {
    if ignore_case {
        lit_prefix(lit, text, 0, true) == Some(text.len())
    } else {
        lit == text
    }
}

/// If `lit` matches `text` at byte `at`, the byte position after the match. With `ignore_case`, both
/// sides are folded character by character.
fn lit_prefix(lit: &str, text: &str, at: usize, ignore_case: bool) -> Option<usize> {
    let rest = text.get(at..)?;
    if !ignore_case {
        return rest.starts_with(lit).then_some(at + lit.len());
    }
    if lit.is_ascii() {
        let head = rest.as_bytes().get(..lit.len())?;
        return head.eq_ignore_ascii_case(lit.as_bytes()).then_some(at + lit.len());
    }
    let mut used = 0;
    let mut text_chars = rest.chars();
    for lc in lit.chars() {
        let tc = text_chars.next()?;
        if lc != tc && !lc.to_lowercase().eq(tc.to_lowercase()) {
            return None;
        }
        used += tc.len_utf8();
    }
    Some(at + used)
}

fn glob(pieces: &[Piece], text: &str, ignore_case: bool, keys: &ConditionKeys) -> bool {
    let mut p = 0;
    let mut t = 0;
    // After a `*`: the piece following it, and where in the text the `*` currently stops.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(piece) = pieces.get(p) {
            let advanced = match piece {
                Piece::Star => {
                    if p + 1 == pieces.len() {
                        return true;
                    }
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Piece::One => text[t..].chars().next().map(|c| t + c.len_utf8()),
                Piece::Lit(lit) => lit_prefix(lit, text, t, ignore_case),
                Piece::Var(var) => match var.resolve(keys) {
                    Some(value) => lit_prefix(value, text, t, ignore_case),
                    None => return false,
                },
            };
            if let Some(next) = advanced {
                t = next;
                p += 1;
                continue;
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more character, or fail.
        let Some((after_star, stop)) = star else {
            return false;
        };
        let Some(c) = text[stop..].chars().next() else {
            return false;
        };
        let stop = stop + c.len_utf8();
        star = Some((after_star, stop));
        p = after_star;
        t = stop;
    }
}
