//! The AWS wire protocols berth speaks, and how a response body is framed in each.

use crate::error::AwsError;
use crate::xml;

/// A wire protocol, as named in botocore's `metadata.protocol`.
///
/// restXml (Route53) and smithy-rpc-v2-cbor (CloudWatch metrics) come with the services that need
/// them: each is one more variant here, one more arm in [`crate::gateway`]'s operation resolution
/// (by path instead of by header or form field) and one more body codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `X-Amz-Target: <prefix>.<Operation>`, `application/x-amz-json-1.0`.
    AwsJson1_0,
    /// `X-Amz-Target: <prefix>.<Operation>`, `application/x-amz-json-1.1`.
    AwsJson1_1,
    /// Form `Action=<Operation>&Version=…`, XML responses.
    AwsQuery,
}

impl Protocol {
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::AwsJson1_0 => "application/x-amz-json-1.0",
            Protocol::AwsJson1_1 => "application/x-amz-json-1.1",
            Protocol::AwsQuery => "text/xml",
        }
    }

    pub fn is_json(self) -> bool {
        matches!(self, Protocol::AwsJson1_0 | Protocol::AwsJson1_1)
    }

    /// The body of an error response.
    pub fn error_body(self, err: &AwsError, request_id: &str, xml_namespace: Option<&str>) -> String {
        match self {
            Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => {
                let mut body = serde_json::json!({ "__type": err.code, "message": err.message });
                if let (Some(fields), Some(obj)) = (&err.fields, body.as_object_mut()) {
                    for (k, v) in fields.iter() {
                        obj.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                body.to_string()
            }
            Protocol::AwsQuery => {
                let kind = if err.is_server_fault() { "Receiver" } else { "Sender" };
                let ns = xml_namespace.map(|n| format!(" xmlns=\"{}\"", xml::escape(n))).unwrap_or_default();
                format!(
                    "<ErrorResponse{ns}><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                    xml::escape(&err.code),
                    xml::escape(&err.message),
                    xml::escape(request_id)
                )
            }
        }
    }

    /// Frames a successful awsQuery result: `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…`.
    pub fn query_response(operation: &str, namespace: &str, result: Option<&str>, request_id: &str) -> String {
        let mut out = String::with_capacity(160 + 2 * operation.len() + namespace.len() + result.map_or(0, str::len));
        out.push('<');
        out.push_str(operation);
        out.push_str("Response xmlns=\"");
        xml::escape_into(&mut out, namespace);
        out.push_str("\">");
        if let Some(r) = result {
            out.push('<');
            out.push_str(operation);
            out.push_str("Result>");
            out.push_str(r);
            out.push_str("</");
            out.push_str(operation);
            out.push_str("Result>");
        }
        out.push_str("<ResponseMetadata><RequestId>");
        xml::escape_into(&mut out, request_id);
        out.push_str("</RequestId></ResponseMetadata></");
        out.push_str(operation);
        out.push_str("Response>");
        out
    }
}
