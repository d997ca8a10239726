//! `berth`: the command line. Thin: parsing, printing, and calls into `berth-server`.

mod demo;

/// The API's request path makes many short-lived allocations; mimalloc serves them markedly faster
/// than glibc's allocator (see bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "A self-hosted, AWS-compatible container platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Address the API listens on.
    #[arg(long, env = "BERTH_LISTEN", default_value = berth_server::config::DEFAULT_LISTEN)]
    listen: String,
    /// Directory for berth's state (default: $XDG_DATA_HOME/berth or ~/.local/share/berth).
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The 12-digit account id berth answers as.
    #[arg(long, env = "BERTH_ACCOUNT_ID")]
    account_id: Option<String>,
    /// The region berth serves.
    #[arg(long, env = "BERTH_REGION")]
    region: Option<String>,
    /// The registry's host as docker reaches it, for repository URIs (default: localhost:<port>).
    #[arg(long, env = "BERTH_REGISTRY_HOST")]
    registry_host: Option<String>,
    /// Where tasks' containers get their role credentials and metadata; `off` serves none.
    /// 169.254.170.2 is added to `lo` when berth may (root).
    #[arg(long, env = "BERTH_TASK_ENDPOINT", default_value = "169.254.170.2:80")]
    task_endpoint: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the AWS-compatible API server.
    Server(ServerArgs),
    /// Print shell exports that point the aws CLI and SDKs at a berth server: eval $(berth env)
    Env {
        /// The server's data directory (its root key is read from there).
        #[arg(long, env = "BERTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The server's address, if not the one it last recorded in the data directory.
        #[arg(long)]
        listen: Option<String>,
        #[arg(long, env = "BERTH_REGION")]
        region: Option<String>,
    },
    /// Start an embedded berth and play the deployment flow against it, step by step.
    Demo {
        /// Keep the demo's state here instead of in a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen here instead of on a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo shows its own progress; the server logs at info unless RUST_LOG says otherwise.
    init_logging(if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" });
    let result = match cli.command {
        Command::Server(args) => runtime().and_then(|rt| rt.block_on(server(args))),
        Command::Env { data_dir, listen, region } => env(data_dir, listen, region),
        Command::Demo { data_dir, listen } => runtime().and_then(|rt| rt.block_on(demo::run(data_dir, &listen))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn config(args: &ServerArgs) -> anyhow::Result<berth_server::Config> {
    let mut config = berth_server::Config::new(
        &args.listen,
        args.data_dir.clone(),
        args.account_id.as_deref(),
        args.region.as_deref(),
    )?;
    config.registry_host = args.registry_host.clone();
    config.task_endpoint = match args.task_endpoint.as_str() {
        "off" | "" => None,
        addr => Some(addr.parse().with_context(|| {
            format!("--task-endpoint '{addr}' is not an IP address and port (or `off`), e.g. 169.254.170.2:80")
        })?),
    };
    Ok(config)
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let stop = shutdown_signal()?;
    let running = berth_server::start(config).await?;
    let env_cmd = if args.data_dir.is_some() {
        format!("eval $(berth env --data-dir {})", running.data_dir.display())
    } else {
        "eval $(berth env)".to_string()
    };
    let key_source = match &running.root.source {
        berth_iam::RootCredentialSource::File(p) => format!("in {}", p.display()),
        berth_iam::RootCredentialSource::Environment => "from BERTH_ROOT_ACCESS_KEY_ID".to_string(),
    };
    println!("berth {} is serving the AWS API", env!("CARGO_PKG_VERSION"));
    println!("  endpoint  {}", running.endpoint());
    println!("  data dir  {}", running.data_dir.display());
    println!("  account   {}  region {}", running.config.aws.account_id, running.config.aws.region);
    println!("  root key  {} ({key_source})", running.root.access_key_id);
    println!(
        "  registry  {} (docker login -u AWS -p $(aws ecr get-login-password) {})",
        running.registry_host, running.registry_host
    );
    println!("point the aws CLI and SDKs at it:  {env_cmd}");
    running.run_until(stop).await;
    Ok(())
}

/// SIGTERM or SIGINT. Registered before the server starts, so a signal that arrives during start-up
/// also stops it gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn env(data_dir: Option<PathBuf>, listen: Option<String>, region: Option<String>) -> anyhow::Result<()> {
    let data_dir = match data_dir {
        Some(d) => d,
        None => berth_server::config::default_data_dir().context("no home directory: pass --data-dir")?,
    };
    let root = berth_iam::RootCredentials::load(&data_dir)?.with_context(|| {
        format!("no root key in {}: start `berth server` with this data directory first", data_dir.display())
    })?;
    let endpoint = match listen {
        Some(l) => format!("http://{l}"),
        None => std::fs::read_to_string(data_dir.join(berth_server::ENDPOINT_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("http://{}", berth_server::config::DEFAULT_LISTEN)),
    };
    let region = region.unwrap_or_else(|| berth_aws::context::DEFAULT_REGION.to_string());
    println!("export AWS_ENDPOINT_URL={endpoint}");
    println!("export AWS_ACCESS_KEY_ID={}", root.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY={}", root.secret_access_key.expose());
    println!("export AWS_DEFAULT_REGION={region}");
    println!("export AWS_REGION={region}");
    Ok(())
}
