//! ECS for berth: the ECS API for clusters, task definitions and tags, and the tables tasks are
//! driven from.
//!
//! - [`ecs`]: [`EcsService`], the API (awsJson 1.1, target prefix
//!   `AmazonEC2ContainerServiceV20141113`): handlers that validate, write one transaction, answer.
//! - [`cluster`]: clusters and their rows.
//! - [`task_definition`]: `RegisterTaskDefinition`'s validation, the normalized, typed definition
//!   ([`TaskDefinitionSpec`]) the task controller starts containers from, and its rows.
//! - [`tasks`]: the `ecs_tasks` table's row type and queries (`count_by_status`).
//! - [`tags`]: resource tags.
//! - [`run_task`]: `RunTask`, `StopTask`, `DescribeTasks`, `ListTasks` (rows only, no Docker work).
//! - [`task_controller`]: drives Docker containers from the task rows (start, observe, stop, adopt).
//! - [`schema`]: the `ecs` migrations.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod ecs;
pub mod error;
pub mod input;
pub mod ports;
pub mod run_task;
pub mod schema;
pub mod tags;
pub mod task_controller;
pub mod task_definition;
pub mod task_endpoint;
pub mod tasks;

pub use cluster::Cluster;
pub use ecs::{EcsService, ECS_SPEC};
pub use error::EcsError;
pub use tags::Tag;
pub use task_definition::{ContainerDefinition, NetworkMode, TaskDefinition, TaskDefinitionSpec};
pub use tasks::{TaskCounts, TaskRow};
