//! The account and region berth answers as, and the ARNs built from them: in one place.

/// Account and region of this berth. Every ARN berth hands out is built here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsContext {
    pub account_id: String,
    pub region: String,
    pub partition: String,
}

pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("account id must be 12 digits, got '{0}'")]
    AccountId(String),
    #[error("region must look like 'us-east-1' (lower-case letters, digits and dashes), got '{0}'")]
    Region(String),
}

impl Default for AwsContext {
    fn default() -> Self {
        AwsContext { account_id: DEFAULT_ACCOUNT_ID.into(), region: DEFAULT_REGION.into(), partition: "aws".into() }
    }
}

impl AwsContext {
    pub fn new(account_id: &str, region: &str) -> Result<AwsContext, ContextError> {
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ContextError::AccountId(account_id.into()));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-');
        if !region_ok {
            return Err(ContextError::Region(region.into()));
        }
        Ok(AwsContext { account_id: account_id.into(), region: region.into(), partition: "aws".into() })
    }

    /// A regional ARN: `arn:aws:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", self.partition, self.region, self.account_id)
    }

    /// A global ARN (IAM, STS): `arn:aws:<service>::<account>:<resource>`.
    pub fn global_arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}::{}:{resource}", self.partition, self.account_id)
    }

    /// The account's root user.
    pub fn root_arn(&self) -> String {
        self.global_arn("iam", "root")
    }
}

/// An ARN split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account_id: it.next()?,
            resource: it.next()?,
        };
        (!arn.partition.is_empty() && !arn.service.is_empty() && !arn.resource.is_empty()).then_some(arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        let c = AwsContext::default();
        assert_eq!(c.root_arn(), "arn:aws:iam::000000000000:root");
        assert_eq!(c.arn("ecs", "cluster/x"), "arn:aws:ecs:us-east-1:000000000000:cluster/x");
        let a = Arn::parse("arn:aws:secretsmanager:us-east-1:000000000000:secret:db:pw").unwrap();
        assert_eq!(a.resource, "secret:db:pw");
        assert!(Arn::parse("arn:aws:iam").is_none());
        assert!(AwsContext::new("12345", "us-east-1").is_err());
        assert!(AwsContext::new("123456789012", "US East").is_err());
    }
}
