//! The AWS managed policies berth knows (`arn:aws:iam::aws:policy/...`): the few a deploy setup
//! attaches, with the documents of their current default versions as AWS publishes them. They can
//! be read (GetPolicy, GetPolicyVersion, ListPolicies) and attached, never changed.
//!
//! Left out on purpose, because their documents are too large to carry faithfully:
//! `ReadOnlyAccess`, `AmazonECS_FullAccess`, `SecretsManagerReadWrite`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use berth_aws::time::Timestamp;

use crate::policy::{Policy, PolicyKind};

/// The account part of every AWS managed policy's ARN.
pub const AWS_MANAGED_ARN_PREFIX: &str = "arn:aws:iam::aws:policy";

/// One AWS managed policy as IAM describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwsManagedPolicy {
    pub policy_name: &'static str,
    pub path: &'static str,
    pub policy_id: &'static str,
    pub description: &'static str,
    /// The only version berth carries: the current default.
    pub default_version_id: &'static str,
    pub created_at: Timestamp,
    /// When the default version was created.
    pub updated_at: Timestamp,
    pub document: &'static str,
}

impl AwsManagedPolicy {
    pub fn arn(&self) -> String {
        format!("{AWS_MANAGED_ARN_PREFIX}{}{}", self.path, self.policy_name)
    }
}

const ADMINISTRATOR_ACCESS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "*",
            "Resource": "*"
        }
    ]
}"#;

const POWER_USER_ACCESS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "NotAction": [
                "iam:*",
                "organizations:*",
                "account:*"
            ],
            "Resource": "*"
        },
        {
            "Effect": "Allow",
            "Action": [
                "account:GetAccountInformation",
                "account:GetGovCloudAccountInformation",
                "account:GetPrimaryEmail",
                "account:ListRegions",
                "iam:CreateServiceLinkedRole",
                "iam:DeleteServiceLinkedRole",
                "iam:ListRoles",
                "organizations:DescribeEffectivePolicy",
                "organizations:DescribeOrganization"
            ],
            "Resource": "*"
        }
    ]
}"#;

const AMAZON_ECS_TASK_EXECUTION_ROLE_POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
                "logs:CreateLogStream",
                "logs:PutLogEvents"
            ],
            "Resource": "*"
        }
    ]
}"#;

const AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:GetRepositoryPolicy",
                "ecr:DescribeRepositories",
                "ecr:ListImages",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetLifecyclePolicy",
                "ecr:GetLifecyclePolicyPreview",
                "ecr:ListTagsForResource",
                "ecr:DescribeImageScanFindings"
            ],
            "Resource": "*"
        }
    ]
}"#;

const AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:GetRepositoryPolicy",
                "ecr:DescribeRepositories",
                "ecr:ListImages",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetLifecyclePolicy",
                "ecr:GetLifecyclePolicyPreview",
                "ecr:ListTagsForResource",
                "ecr:DescribeImageScanFindings",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage"
            ],
            "Resource": "*"
        }
    ]
}"#;

const CLOUD_WATCH_LOGS_FULL_ACCESS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "CloudWatchLogsFullAccess",
            "Effect": "Allow",
            "Action": [
                "logs:*",
                "cloudwatch:GenerateQuery",
                "cloudwatch:GenerateQueryResultsSummary",
                "observabilityadmin:GetS3TableIntegration",
                "observabilityadmin:ListS3TableIntegrations",
                "observabilityadmin:ListTelemetryPipelines"
            ],
            "Resource": "*"
        }
    ]
}"#;

const AMAZON_SSM_READ_ONLY_ACCESS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ssm:Describe*",
                "ssm:Get*",
                "ssm:List*"
            ],
            "Resource": "*"
        }
    ]
}"#;

/// The built-in set, sorted by name.
static POLICIES: &[AwsManagedPolicy] = &[
    AwsManagedPolicy {
        policy_name: "AdministratorAccess",
        path: "/",
        policy_id: "ANPAIWMBCKSKIEE64ZLYK",
        description: "Provides full access to AWS services and resources.",
        default_version_id: "v1",
        created_at: Timestamp(1_423_247_986), // 2015-02-06T18:39:46Z
        updated_at: Timestamp(1_423_247_986),
        document: ADMINISTRATOR_ACCESS,
    },
    AwsManagedPolicy {
        policy_name: "AmazonEC2ContainerRegistryPowerUser",
        path: "/",
        policy_id: "ANPAJDNE5PIHROIBGGDDW",
        description: "Provides full access to Amazon EC2 Container Registry repositories, but does not allow \
                      repository deletion or policy changes.",
        default_version_id: "v3",
        created_at: Timestamp(1_450_717_533), // 2015-12-21T17:05:33Z
        updated_at: Timestamp(1_576_010_888), // 2019-12-10T20:48:08Z
        document: AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER,
    },
    AwsManagedPolicy {
        policy_name: "AmazonEC2ContainerRegistryReadOnly",
        path: "/",
        policy_id: "ANPAIFYZPA37OOHVIH7KQ",
        description: "Provides read-only access to Amazon EC2 Container Registry repositories.",
        default_version_id: "v3",
        created_at: Timestamp(1_450_717_608), // 2015-12-21T17:06:48Z
        updated_at: Timestamp(1_576_011_392), // 2019-12-10T20:56:32Z
        document: AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY,
    },
    AwsManagedPolicy {
        policy_name: "AmazonECSTaskExecutionRolePolicy",
        path: "/service-role/",
        policy_id: "ANPAJG4T4G4PV56DE72PY",
        description: "Provides access to other AWS service resources that are required to run Amazon ECS tasks",
        default_version_id: "v1",
        created_at: Timestamp(1_510_858_102), // 2017-11-16T18:48:22Z
        updated_at: Timestamp(1_510_858_102),
        document: AMAZON_ECS_TASK_EXECUTION_ROLE_POLICY,
    },
    AwsManagedPolicy {
        policy_name: "AmazonSSMReadOnlyAccess",
        path: "/",
        policy_id: "ANPAJODSKQGGJTHRYZ5FC",
        description: "Provides read only access to Amazon SSM.",
        default_version_id: "v1",
        created_at: Timestamp(1_432_921_459), // 2015-05-29T17:44:19Z
        updated_at: Timestamp(1_432_921_459),
        document: AMAZON_SSM_READ_ONLY_ACCESS,
    },
    AwsManagedPolicy {
        policy_name: "CloudWatchLogsFullAccess",
        path: "/",
        policy_id: "ANPAJ3ZGNWK2R5HW5BQFO",
        description: "Provides full access to CloudWatch Logs",
        default_version_id: "v4",
        created_at: Timestamp(1_423_248_002), // 2015-02-06T18:40:02Z
        updated_at: Timestamp(1_764_693_248), // 2025-12-02T16:34:08Z
        document: CLOUD_WATCH_LOGS_FULL_ACCESS,
    },
    AwsManagedPolicy {
        policy_name: "PowerUserAccess",
        path: "/",
        policy_id: "ANPAJYRXTHIB4FOVS3ZXS",
        description: "Provides full access to AWS services and resources, but does not allow management of Users \
                      and groups.",
        default_version_id: "v12",
        created_at: Timestamp(1_423_247_987), // 2015-02-06T18:39:47Z
        updated_at: Timestamp(1_770_919_154), // 2026-02-12T17:59:14Z
        document: POWER_USER_ACCESS,
    },
];

/// Every AWS managed policy berth knows, sorted by name.
pub fn all() -> &'static [AwsManagedPolicy] {
    POLICIES
}

/// The AWS managed policy with this ARN.
pub fn find(arn: &str) -> Option<&'static AwsManagedPolicy> {
    let rest = arn.strip_prefix(AWS_MANAGED_ARN_PREFIX)?;
    POLICIES.iter().find(|p| rest.strip_prefix(p.path) == Some(p.policy_name))
}

/// Whether the ARN is in the AWS managed namespace (known to berth or not).
pub fn is_aws_managed_arn(arn: &str) -> bool {
    arn.starts_with("arn:aws:iam::aws:")
}

static PARSED: LazyLock<HashMap<String, Arc<Policy>>> = LazyLock::new(|| {
    let mut parsed = HashMap::new();
    for p in POLICIES {
        match Policy::parse(p.document, PolicyKind::Identity) {
            Ok(policy) => {
                parsed.insert(p.arn(), Arc::new(policy));
            }
            // A wiring bug the unit test below catches; a policy that does not parse grants nothing.
            Err(e) => tracing::error!(policy = p.policy_name, error = %e, "built-in AWS managed policy does not parse"),
        }
    }
    parsed
});

/// The AWS managed policy with this ARN (`arn:aws:iam::aws:policy/...`), parsed.
pub fn policy(arn: &str) -> Option<Arc<Policy>> {
    PARSED.get(arn).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_is_found_by_arn() {
        for p in all() {
            assert!(policy(&p.arn()).is_some(), "{} does not parse", p.policy_name);
            assert_eq!(find(&p.arn()), Some(p));
            assert!(p.policy_id.starts_with("ANPA") && p.policy_id.len() == 21, "{}", p.policy_id);
            assert!(p.updated_at >= p.created_at);
        }
        let names: Vec<&str> = all().iter().map(|p| p.policy_name).collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| n.to_lowercase());
        assert_eq!(names, sorted);
    }

    #[test]
    fn arns_and_dates() {
        let exec = find("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy").unwrap();
        assert_eq!(exec.path, "/service-role/");
        assert_eq!(exec.created_at.iso8601(), "2017-11-16T18:48:22Z");
        assert!(find("arn:aws:iam::aws:policy/AmazonECSTaskExecutionRolePolicy").is_none());
        assert!(find("arn:aws:iam::aws:policy/ReadOnlyAccess").is_none());
        assert_eq!(
            find("arn:aws:iam::aws:policy/AdministratorAccess").unwrap().created_at.iso8601(),
            "2015-02-06T18:39:46Z"
        );
        assert!(policy("arn:aws:iam::000000000000:policy/AdministratorAccess").is_none());
    }
}
