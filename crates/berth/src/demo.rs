//! `berth demo`: an embedded berth, and the seed's deployment flow played against its public API.
//!
//! Today the flow has its first step only: the pipeline's identity. Each capability adds its step
//! as it lands (registry, cluster and service, secrets, logs, blue/green).

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use berth_server::client::ApiClient;

struct Steps {
    started: Instant,
    n: usize,
}

impl Steps {
    /// Runs one step of the flow, timing it and saying what berth did.
    async fn step<T>(
        &mut self,
        what: &str,
        work: impl Future<Output = anyhow::Result<(T, String)>>,
    ) -> anyhow::Result<T> {
        self.n += 1;
        let t = Instant::now();
        match work.await {
            Ok((value, detail)) => {
                println!("  [{}] ✓ {what} ({} ms)\n        {detail}", self.n, t.elapsed().as_millis());
                Ok(value)
            }
            Err(e) => {
                println!("  [{}] ✗ {what}", self.n);
                Err(e)
            }
        }
    }
}

pub async fn run(data_dir: Option<PathBuf>, listen: &str) -> anyhow::Result<()> {
    let mut steps = Steps { started: Instant::now(), n: 0 };
    let tmp;
    let dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary data dir")?;
            tmp.path().to_path_buf()
        }
    };
    println!("berth demo: the seed's deployment flow against an embedded berth\n");

    let config = berth_server::Config::new(listen, Some(dir.clone()), None, None)?;
    let server = steps
        .step("start berth", async {
            let server = berth_server::start(config).await?;
            let detail = format!("endpoint {} · data dir {}", server.endpoint(), dir.display());
            Ok((server, detail))
        })
        .await?;
    let client = berth_server::testing::root_client(&server);
    steps.step("who am I: sts get-caller-identity (SigV4-signed, verified by berth)", caller_identity(&client)).await?;
    steps
        .step("create the pipeline's IAM user (durable before the call returns)", create_pipeline_user(&client))
        .await?;
    steps
        .step("stop berth gracefully", async {
            server.shutdown().await;
            Ok(((), "in-flight requests finished; state closed".to_string()))
        })
        .await?;
    println!(
        "\ndone in {:.1} s. Coming as they land: registry push, cluster and service, secrets, logs, blue/green.",
        steps.started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn caller_identity(client: &ApiClient) -> anyhow::Result<((), String)> {
    let resp = client.query("sts", "GetCallerIdentity", "2011-06-15", &[]).await?;
    if resp.status != 200 {
        bail!("GetCallerIdentity answered {}: {}", resp.status, resp.text());
    }
    let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
    let account = resp.xml_value("Account").context("no Account in the answer")?;
    Ok(((), format!("account {account} · {arn}")))
}

async fn create_pipeline_user(client: &ApiClient) -> anyhow::Result<((), String)> {
    let resp = client.query("iam", "CreateUser", "2010-05-08", &[("UserName", "pipeline"), ("Path", "/ci/")]).await?;
    if resp.status != 200 {
        bail!("CreateUser answered {}: {}", resp.status, resp.text());
    }
    let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
    Ok(((), arn))
}
