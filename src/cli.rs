//! The command line: `examroom serve` and the admin commands.

use crate::config::{Settings, Sources};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "examroom", version, about = "Telehealth consultation server")]
pub struct Cli {
    /// Settings file (default: config/examroom.toml when it exists).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Folder for durable data.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (also EXAMROOM_ADDR).
        #[arg(long, env = "EXAMROOM_ADDR")]
        addr: Option<SocketAddr>,
        /// Add three synthetic demo patients (demo-patient-1, -2, -3), held in memory
        /// only: never written into the record store.
        #[arg(long)]
        demo: bool,
    },
    /// The record-access audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage staff accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exits non-zero and names the first bad entry when an entry
    /// was edited, deleted or reordered.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a staff account. The password is read from EXAMROOM_ADMIN_PASSWORD, else
    /// from the first line of standard input (never from a flag: flags show in `ps`).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: admin, physician.
        #[arg(long, value_delimiter = ',', default_value = "admin,physician")]
        roles: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::app::StartError),
    #[error("{0}")]
    Other(String),
}

pub fn init_logging(settings: &Settings, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json || settings.log.format == crate::config::LogFormat::Json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let mut sources = Sources {
        file: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        ..Default::default()
    };
    match cli.command {
        Command::Serve { addr, demo } => {
            sources.addr = addr;
            sources.demo = demo;
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            serve(settings).await
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            let store = crate::durable::open(&settings)
                .await
                .map_err(crate::app::StartError::from)?;
            let v = store
                .verify_audit()
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
            if v.ok {
                println!(
                    "audit log intact: {} entries, hash chain verified",
                    v.entries
                );
                Ok(())
            } else {
                Err(CliError::Other(format!(
                    "audit log TAMPERED: first bad entry seq {}: {} ({} entries read)",
                    v.first_bad_seq
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "?".into()),
                    v.problem.unwrap_or_default(),
                    v.entries
                )))
            }
        }
        Command::Admin {
            command: AdminCommand::Create { email, name, roles },
        } => {
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            admin_create(settings, &email, &name, &roles).await
        }
    }
}

async fn admin_create(
    settings: Settings,
    email: &str,
    name: &str,
    roles: &[String],
) -> Result<(), CliError> {
    use crate::identity::Role;
    let roles = roles
        .iter()
        .map(|r| match r.trim() {
            "admin" => Ok(Role::Admin),
            "physician" => Ok(Role::Physician),
            other => Err(CliError::Other(format!(
                "unknown role `{other}`: use admin, physician"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let password = match std::env::var("EXAMROOM_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::Other(format!("reading the password from stdin: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let store = crate::durable::open(&settings)
        .await
        .map_err(|e| CliError::Other(format!("database: {e}")))?;
    let staff = crate::identity::setup::create_staff(store.as_ref(), email, name, roles, &password)
        .await
        .map_err(|e| CliError::Other(format!("cannot create the account: {e}")))?;
    println!(
        "created {} ({}) with roles {:?}",
        staff.email, staff.id, staff.roles
    );
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(settings.server.addr)
        .await
        .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", settings.server.addr)))?;
    let state = crate::app::build(settings).await?;
    let url = state.settings.public_url();
    crate::app::announce(&state, &url).await;
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: telling clients to reconnect");
        shutdown.cancel();
    });
    crate::app::run(listener, state).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
