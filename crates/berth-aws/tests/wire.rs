//! Integration tests of the AWS wire (`berth-aws`): SigV4 against the official test vectors, the
//! clock-skew and presign-expiry rules, client signing round trips, property tests of the parsers,
//! and the gateway end to end with in-test services.

#[path = "wire/support.rs"]
mod support;

#[path = "wire/vectors.rs"]
mod vectors;

#[path = "wire/time_rules.rs"]
mod time_rules;

#[path = "wire/signing.rs"]
mod signing;

#[path = "wire/props.rs"]
mod props;

#[path = "wire/gateway.rs"]
mod gateway;
