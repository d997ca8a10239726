//! berth-runtime against the real Docker Engine on this machine: images built FROM scratch out of
//! the static busybox, real containers, networks, events and a real pull from berth's registry.
//!
//! These tests need a Docker daemon and the docker CLI: without them they fail, saying so; they
//! are never skipped. Every test labels what it creates with its own id and a guard removes it
//! all, so the tests run in parallel without touching each other's (or anyone else's) things.

#[path = "runtime/support.rs"]
mod support;

#[path = "runtime/containers.rs"]
mod containers;
#[path = "runtime/events.rs"]
mod events;
#[path = "runtime/images.rs"]
mod images;
#[path = "runtime/networks.rs"]
mod networks;
