//! STS: who am I.

use berth_aws::xml::XmlWriter;
use berth_aws::{Auth, AwsError, BoxFuture, Input, Operation, Output, Protocol, RequestContext, Service, ServiceSpec};

pub static STS_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "sts",
    action_prefix: "sts",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: "https://sts.amazonaws.com/doc/2011-06-15/",
    global: true,
    operations: &[
        // AWS answers GetCallerIdentity for every valid credential, even under an explicit deny.
        Operation { name: "GetCallerIdentity", auth: Auth::AnyAuthenticated },
    ],
};

/// The STS API.
#[derive(Debug, Default)]
pub struct StsService;

impl Service for StsService {
    fn spec(&self) -> &'static ServiceSpec {
        &STS_SPEC
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, _input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            match ctx.operation {
                "GetCallerIdentity" => {
                    let p = &ctx.principal;
                    let mut w = XmlWriter::new();
                    w.elem("UserId", &p.user_id).elem("Account", &p.account_id).elem("Arn", &p.arn);
                    Ok(Output::Xml(Some(w.into_string())))
                }
                op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
            }
        })
    }
}
