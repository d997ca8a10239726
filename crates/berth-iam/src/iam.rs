//! The IAM API (awsQuery).

use std::sync::Arc;

use berth_aws::time::{SharedClock, Timestamp};
use berth_aws::xml::XmlWriter;
use berth_aws::{
    AwsError, BoxFuture, Input, Operation, Output, PrincipalKind, Protocol, QueryInput, RequestContext, ResourceRule,
    Service, ServiceSpec,
};
use berth_store::Store;

use crate::error::IamError;
use crate::user::{self, NewUser, Users};

pub static IAM_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "iam",
    action_prefix: "iam",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: "https://iam.amazonaws.com/doc/2010-05-08/",
    global: true,
    operations: &[
        Operation::action("CreateUser", "iam:CreateUser", ResourceRule::Arn(user_arn)),
        Operation::action("GetUser", "iam:GetUser", ResourceRule::Arn(user_arn)),
        Operation::action("ListUsers", "iam:ListUsers", ResourceRule::Any),
        Operation::action("DeleteUser", "iam:DeleteUser", ResourceRule::Arn(user_arn)),
    ],
};

/// `arn:aws:iam::<acct>:user/<path><name>` for the user the request names (the path when the request
/// gives one), or the caller's own ARN when it names none.
fn user_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let q = input.as_query();
    match q.and_then(|q| q.get("UserName")) {
        Some(name) => {
            let path = q.and_then(|q| q.get("Path")).unwrap_or("/");
            Ok(ctx.aws.global_arn("iam", &format!("user{path}{name}")))
        }
        None => Ok(ctx.principal.arn.clone()),
    }
}

pub const MIGRATIONS: &[&str] = user::MIGRATIONS;

/// The IAM API.
pub struct IamService {
    users: Users,
    clock: SharedClock,
}

impl IamService {
    /// Applies IAM's migrations and serves from `store`.
    pub fn new(store: Store, clock: SharedClock) -> Result<Arc<IamService>, IamError> {
        store.migrate("iam", MIGRATIONS)?;
        Ok(Arc::new(IamService { users: Users::new(store), clock }))
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_system(self.clock.now())
    }

    async fn create_user(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let new = NewUser::from_query(q)?;
        let user = self.users.create(&ctx.aws, new, self.now()).await?;
        let mut w = XmlWriter::new();
        w.node("User", |w| user.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn get_user(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let name = match (q.get("UserName"), &ctx.principal.kind) {
            (Some(name), _) => name.to_string(),
            (None, PrincipalKind::User { name }) => name.clone(),
            (None, PrincipalKind::Root) => {
                // The root user has no name or path: AWS answers with its id, ARN and creation date.
                let mut w = XmlWriter::new();
                w.node("User", |w| {
                    w.elem("UserId", &ctx.principal.user_id)
                        .elem("Arn", &ctx.principal.arn)
                        .elem("CreateDate", Timestamp(0).iso8601());
                });
                return Ok(Output::Xml(Some(w.into_string())));
            }
            (None, PrincipalKind::AssumedRole { .. } | PrincipalKind::Anonymous) => {
                return Err(AwsError::client(
                    "ValidationError",
                    "Must specify userName when calling with non-User credentials",
                ));
            }
        };
        user::validate_user_name(&name)?;
        let user = self.users.get(&name).await?;
        let mut w = XmlWriter::new();
        w.node("User", |w| user.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn list_users(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let prefix = q.get("PathPrefix").unwrap_or("/");
        if !prefix.starts_with('/') || prefix.len() > 512 {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{prefix}' at 'pathPrefix' failed to satisfy constraint: Member must begin with /"
            ))
            .into());
        }
        let max_items = q.int("MaxItems")?.unwrap_or(100);
        if !(1..=1000).contains(&max_items) {
            return Err(IamError::Validation(format!(
                "1 validation error detected: Value '{max_items}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            ))
            .into());
        }
        let marker = match q.get("Marker") {
            None => None,
            Some(m) => {
                Some(user::parse_marker(m).ok_or_else(|| AwsError::client("ValidationError", "Invalid Marker"))?)
            }
        };
        let (users, next) = self.users.list(prefix, marker, max_items as usize).await?;
        let mut w = XmlWriter::new();
        w.members("Users", &users, |w, u| u.write_xml(w));
        w.elem("IsTruncated", if next.is_some() { "true" } else { "false" });
        w.opt_elem("Marker", next);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn delete_user(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let name = q.required("UserName")?;
        user::validate_user_name(name)?;
        self.users.delete(name).await?;
        Ok(Output::Xml(None))
    }
}

impl Service for IamService {
    fn spec(&self) -> &'static ServiceSpec {
        &IAM_SPEC
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let Input::Query(q) = input else {
                return Err(AwsError::client("InvalidAction", "IAM speaks awsQuery"));
            };
            match ctx.operation {
                "CreateUser" => self.create_user(ctx, &q).await,
                "GetUser" => self.get_user(ctx, &q).await,
                "ListUsers" => self.list_users(&q).await,
                "DeleteUser" => self.delete_user(&q).await,
                op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
            }
        })
    }
}
