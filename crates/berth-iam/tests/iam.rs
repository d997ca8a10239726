//! berth-iam's integration tests, one binary: the policy engine's tables, OIDC token verification
//! against a real issuer on a socket, and the IAM API over a real SQLite store.

#[path = "iam/policy.rs"]
mod policy;

#[path = "iam/oidc.rs"]
mod oidc;

#[path = "iam/policies_api.rs"]
mod policies_api;

#[path = "iam/keys_and_providers.rs"]
mod keys_and_providers;

#[path = "iam/service_sessions.rs"]
mod service_sessions;
