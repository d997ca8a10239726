//! A small writer for the XML that awsQuery responses carry.

/// Builds XML text with escaping. Elements are written in order; callers nest with [`XmlWriter::node`].
#[derive(Default, Debug)]
pub struct XmlWriter {
    buf: String,
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter { buf: String::with_capacity(256) }
    }

    /// `<tag>escaped text</tag>`
    pub fn elem(&mut self, tag: &str, text: impl AsRef<str>) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        escape_into(&mut self.buf, text.as_ref());
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// Writes the element only when there is a value, as AWS omits absent members.
    pub fn opt_elem(&mut self, tag: &str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(t) = text {
            self.elem(tag, t);
        }
        self
    }

    /// `<tag>…</tag>` with children written by `f`.
    pub fn node(&mut self, tag: &str, f: impl FnOnce(&mut XmlWriter)) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        f(self);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// A list in the awsQuery shape: `<tag><member>…</member>…</tag>`.
    pub fn members<T>(&mut self, tag: &str, items: &[T], mut f: impl FnMut(&mut XmlWriter, &T)) -> &mut Self {
        self.node(tag, |w| {
            for item in items {
                w.node("member", |w| f(w, item));
            }
        })
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

pub(crate) fn escape_into(out: &mut String, text: &str) {
    // Most text (names, ids, ARNs) needs no escaping: copy it whole.
    if !text
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | b'\r') || (b < 0x20 && b != b'\n' && b != b'\t'))
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push_str(&format!("&#x{:X};", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let mut w = XmlWriter::new();
        w.node("A", |w| {
            w.elem("B", "x<y & \"z\"");
            w.members("L", &["1", "2"], |w, v| {
                w.elem("V", v);
            });
        });
        assert_eq!(
            w.into_string(),
            "<A><B>x&lt;y &amp; &quot;z&quot;</B><L><member><V>1</V></member><member><V>2</V></member></L></A>"
        );
    }
}
