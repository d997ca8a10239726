//! `registry_maintenance`: the background task that applies every repository's lifecycle policy
//! and then collects garbage, once per interval. ECR expires images "within 24 hours" of a policy
//! allowing it; berth does it within one interval (an hour by default).
//!
//! A failure is logged and the next pass tries again: maintenance never stops the server. The
//! first pass runs one interval after startup, so a server that starts and stops (a test, a
//! restart) does no background work it was not asked for.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::Registry;
use crate::{gc, lifecycle};

/// What one pass did, for logs and tests.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Images expired by lifecycle policies, per repository.
    pub expired: Vec<(String, usize)>,
    /// `None` if collecting failed (logged).
    pub gc: Option<gc::GcReport>,
}

/// Starts the task: a pass every `every`, with `grace` for the collector. It ends when `stop`
/// turns true (or its sender is dropped), after finishing the pass under way, if any.
pub fn spawn(registry: Registry, every: Duration, grace: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::debug!(?every, ?grace, "registry maintenance started");
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            run_once(&registry, grace, Some(&stop)).await;
        }
        tracing::debug!("registry maintenance stopped");
    })
}

/// One pass: every repository's lifecycle policy, then the collector. With `stop`, a pass asked
/// to stop skips what it has not begun.
pub async fn run_once(registry: &Registry, grace: Duration, stop: Option<&watch::Receiver<bool>>) -> PassReport {
    let stopping = || stop.is_some_and(|s| *s.borrow());
    let mut report = PassReport::default();
    match registry.repositories().await {
        Ok(repositories) => {
            for repository in repositories.iter().filter(|r| r.lifecycle_policy.is_some()) {
                if stopping() {
                    return report;
                }
                match lifecycle::apply(registry, &repository.name).await {
                    Ok(deleted) => report.expired.push((repository.name.clone(), deleted.len())),
                    // Deleted since it was listed: nothing to do.
                    Err(crate::RegistryError::RepositoryNotFound(_)) => {}
                    Err(e) => tracing::warn!(
                        repository = %repository.name,
                        error = %e,
                        source = ?std::error::Error::source(&e),
                        "applying the lifecycle policy failed"
                    ),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "listing repositories failed"),
    }
    if stopping() {
        return report;
    }
    match gc::collect(registry, grace).await {
        Ok(r) => report.gc = Some(r),
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "collecting registry garbage failed")
        }
    }
    report
}
