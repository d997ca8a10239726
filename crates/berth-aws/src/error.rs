//! Errors in AWS's shapes. Handlers return [`AwsError`]; the failures of the wire itself
//! ([`WireError`]) are mapped to AWS codes here, per protocol, in one place.

use std::borrow::Cow;

use crate::protocol::Protocol;
use crate::sigv4::SigV4Error;

/// An error as AWS reports it: a code, a message and an HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Members of the error shape besides `message` (ECR's `InvalidLayerPartException` carries
    /// `lastValidByteReceived`), written next to it in JSON protocols; awsQuery errors have none.
    pub fields: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl AwsError {
    pub fn new(status: u16, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> AwsError {
        AwsError { status, code: code.into(), message: message.into(), fields: None }
    }

    /// Adds a member of the error shape (JSON protocols only).
    pub fn with_field(mut self, name: &str, value: impl Into<serde_json::Value>) -> AwsError {
        self.fields.get_or_insert_with(Default::default).insert(name.to_string(), value.into());
        self
    }

    /// A client error (HTTP 400).
    pub fn client(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> AwsError {
        AwsError::new(400, code, message)
    }

    /// A failure on berth's side (HTTP 500). The message must not carry secrets or internals.
    pub fn internal(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> AwsError {
        AwsError::new(500, code, message)
    }

    /// AWS's validation message for a missing required member.
    pub fn missing_parameter(protocol: Protocol, member: &str) -> AwsError {
        match protocol {
            Protocol::AwsQuery => AwsError::client(
                "ValidationError",
                format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
            ),
            Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => {
                AwsError::client("InvalidParameterException", format!("{member} is required."))
            }
        }
    }

    pub fn is_server_fault(&self) -> bool {
        self.status >= 500
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for AwsError {}

/// Failures of the wire, before or around a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    Signature(SigV4Error),
    UnknownAccessKey,
    InvalidSessionToken,
    ExpiredSessionToken,
    AccessDenied { principal_arn: String, action: String, resource: String },
    UnknownService { service: String },
    UnknownOperation { operation: String },
    MissingOperation,
    Serialization(String),
    UnsupportedMediaType(String),
    BodyTooLarge { limit: usize },
    MethodNotAllowed,
}

impl WireError {
    pub fn to_aws(&self, protocol: Protocol) -> AwsError {
        use WireError::*;
        let query = protocol == Protocol::AwsQuery;
        // (json code, query code) for each case.
        let pick = |json: &'static str, q: &'static str| if query { q } else { json };
        match self {
            Signature(SigV4Error::Missing) => AwsError::new(
                if query { 403 } else { 400 },
                pick("MissingAuthenticationTokenException", "MissingAuthenticationToken"),
                "Request is missing Authentication Token",
            ),
            Signature(e @ SigV4Error::Incomplete(_)) => {
                AwsError::client(pick("IncompleteSignatureException", "IncompleteSignature"), e.to_string())
            }
            Signature(e @ (SigV4Error::Expired(_) | SigV4Error::Mismatch)) => AwsError::new(
                if query { 403 } else { 400 },
                pick("InvalidSignatureException", "SignatureDoesNotMatch"),
                e.to_string(),
            ),
            Signature(e @ SigV4Error::ContentSha256Mismatch) => {
                AwsError::client("XAmzContentSHA256Mismatch", e.to_string())
            }
            UnknownAccessKey | InvalidSessionToken => AwsError::new(
                if query { 403 } else { 400 },
                pick("UnrecognizedClientException", "InvalidClientTokenId"),
                "The security token included in the request is invalid.",
            ),
            ExpiredSessionToken => AwsError::new(
                if query { 403 } else { 400 },
                pick("ExpiredTokenException", "ExpiredToken"),
                "The security token included in the request is expired",
            ),
            AccessDenied { principal_arn, action, resource } => AwsError::new(
                if query { 403 } else { 400 },
                pick("AccessDeniedException", "AccessDenied"),
                format!("User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"),
            ),
            UnknownService { service } => AwsError::client(
                pick("UnknownOperationException", "InvalidAction"),
                format!("berth does not implement the AWS service '{service}'"),
            ),
            UnknownOperation { operation } => AwsError::client(
                pick("UnknownOperationException", "InvalidAction"),
                format!("Could not find operation {operation}"),
            ),
            MissingOperation => AwsError::client(
                pick("UnknownOperationException", "MissingAction"),
                if query { "Action parameter is required" } else { "X-Amz-Target header is required" },
            ),
            Serialization(msg) => AwsError::client(pick("SerializationException", "MalformedQueryString"), msg.clone()),
            UnsupportedMediaType(ct) => AwsError::new(
                415,
                pick("UnsupportedMediaTypeException", "UnsupportedMediaType"),
                format!("Unsupported Content-Type '{ct}'"),
            ),
            BodyTooLarge { limit } => AwsError::new(
                413,
                pick("RequestEntityTooLargeException", "RequestEntityTooLarge"),
                format!("Request body is larger than the limit of {limit} bytes"),
            ),
            MethodNotAllowed => AwsError::new(
                405,
                pick("UnknownOperationException", "InvalidAction"),
                "This endpoint accepts AWS API calls with POST (or GET with a query string)",
            ),
        }
    }
}
