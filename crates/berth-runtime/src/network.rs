//! User-defined bridge networks: one per ECS cluster gives every `awsvpc` task its own address.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A network to make sure of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// An IPv4 subnet in CIDR form (`172.30.5.0/24`); none lets the engine pick one from its
    /// pools. Containers can have fixed addresses only on a network created with a subnet.
    pub subnet: Option<String>,
}

/// A network as the engine has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    /// The IPv4 subnet, CIDR form.
    pub subnet: Option<String>,
    /// The host's address on the network: containers' default route.
    pub gateway: Option<Ipv4Addr>,
    /// The host-side bridge interface (`br-<first 12 of the id>` unless the network was
    /// created with another name): where host addresses for the network's containers go.
    pub bridge_interface: String,
    pub labels: BTreeMap<String, String>,
}
