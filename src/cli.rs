//! The command line: `examroom serve`, the admin commands, `link create` and `records import`.

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
    /// The embedded record store under <data-dir>/records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
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
    /// Join links made by an admin from the command line (e.g. from the clinic's scheduling
    /// system): the trusted way to put a patient record on a link.
    Link {
        #[command(subcommand)]
        command: LinkCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Make a patient join link and print its URL (the code is shown only here).
    Create {
        /// The room's id (r_…).
        #[arg(long)]
        room: String,
        /// Email of the admin account the link is made in the name of.
        #[arg(long)]
        by: String,
        /// The patient's record id in the record source; the patient confirms their
        /// date of birth against it before the physician's panel opens.
        #[arg(long)]
        patient_ref: Option<String>,
        /// The patient's name, shown to the physician.
        #[arg(long)]
        name: Option<String>,
        /// Hours the link stays valid (default: identity.join_link_secs).
        #[arg(long)]
        valid_hours: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exits non-zero and names the first bad entry when an entry
    /// was edited, deleted or reordered.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Import FHIR R4 JSON into the store: Bundles of any type, NDJSON bulk-export files
    /// (*.ndjson) and single resources (*.json); folders recursively. A resource replaces
    /// the stored one with the same type and id. Every file is checked before anything is
    /// written: if one cannot be read, nothing is imported and the exit status is 1.
    Import {
        /// Files and folders, applied in the order given (a later version wins).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Check the files and report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read the store as `serve` does and list what could not be read, with file and
    /// position. Exits 1 when anything was left out.
    Check,
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
    #[error(transparent)]
    Records(#[from] crate::records::store::StoreError),
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
        Command::Records { command } => {
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            records(&settings, command).await
        }
        Command::Admin {
            command: AdminCommand::Create { email, name, roles },
        } => {
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            admin_create(settings, &email, &name, &roles).await
        }
        Command::Link {
            command:
                LinkCommand::Create {
                    room,
                    by,
                    patient_ref,
                    name,
                    valid_hours,
                },
        } => {
            let settings = Settings::load(&sources)?;
            init_logging(&settings, cli.log_json);
            link_create(settings, &room, &by, patient_ref, name, valid_hours).await
        }
    }
}

/// `link create`: an admin's patient link, as `POST /api/links` makes it.
async fn link_create(
    settings: Settings,
    room: &str,
    by: &str,
    patient_ref: Option<String>,
    name: Option<String>,
    valid_hours: Option<u64>,
) -> Result<(), CliError> {
    use crate::durable::{LinkKind, NewLink};
    use crate::identity::Role;
    use crate::ids::{LinkId, PatientRef, RoomId, VisitId};
    let bad = |m: String| CliError::Other(m);
    let room = RoomId::parse(room).map_err(|_| bad("--room: not a room id".into()))?;
    let patient_ref = patient_ref
        .map(|p| PatientRef::parse(p.trim()))
        .transpose()
        .map_err(|_| bad("--patient-ref: not a record id".into()))?;
    let store = crate::durable::open(&settings)
        .await
        .map_err(|e| bad(format!("database: {e}")))?;
    let admin = store
        .staff_by_email(by)
        .await
        .map_err(|e| bad(format!("database: {e}")))?
        .filter(|s| s.active && s.has_role(Role::Admin))
        .ok_or_else(|| bad("--by: no active admin with that email".into()))?;
    match store.room(&room).await {
        Ok(Some(r)) if !r.archived => {}
        Ok(_) => return Err(bad("--room: no such room".into())),
        Err(e) => return Err(bad(format!("database: {e}"))),
    }
    let now = chrono::Utc::now().timestamp_millis();
    let secs = valid_hours.map_or(settings.identity.join_link_secs, |h| h * 3600);
    let code = crate::identity::links::new_code();
    let link = store
        .create_link(NewLink {
            id: LinkId::new(),
            code_hash: crate::identity::hash_secret(&code),
            kind: LinkKind::Patient,
            room,
            visit: VisitId::new(),
            patient_name: name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
            patient_ref,
            reason: None,
            lang: None,
            not_before: None,
            expires_at: now + secs as i64 * 1000,
            created_by: admin.id.clone(),
            created_at: now,
        })
        .await
        .map_err(|e| bad(format!("link: {e}")))?;
    tracing::info!(link = %link.new.id, room = %link.new.room, staff = %admin.id, "join link minted (command line)");
    println!("{}/join/{code}", settings.public_url());
    Ok(())
}

/// `records import` / `records check`: the report goes to standard output (the operator's
/// terminal, not a log), naming files and positions, never resource content.
async fn records(settings: &Settings, command: RecordsCommand) -> Result<(), CliError> {
    use crate::records::store::RecordStore;
    let store = RecordStore::new(settings.server.data_dir.join("records"));
    let blocking = |f: Box<dyn FnOnce() -> Result<String, CliError> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| CliError::Other(format!("the records task failed: {e}")))?
    };
    let out = match command {
        RecordsCommand::Import { paths, dry_run } => {
            let fhir = settings.records.source == crate::config::RecordsBackend::Fhir;
            let reload = settings.records.reload_secs;
            blocking(Box::new(move || {
                let report = store.import(&paths, dry_run)?;
                let mut out = report.render(dry_run);
                if fhir {
                    out.push_str(
                        "note: records.source is \"fhir\": the server reads the FHIR server, not this store\n",
                    );
                } else if report.written {
                    out.push_str(&if reload > 0 {
                        format!("a running server picks this up within {reload} s (records.reload_secs)\n")
                    } else {
                        "restart the server to see it (records.reload_secs = 0)\n".to_owned()
                    });
                }
                Ok(out)
            }))
            .await?
        }
        RecordsCommand::Check => {
            blocking(Box::new(move || {
                let (src, report) = crate::records::EmbeddedSource::load(&store, false)
                    .map_err(|e| CliError::Other(e.to_string()))?;
                let stats = src.stats();
                let out = crate::records::embedded::render_check(&store, &stats, &report);
                if stats.skipped() + stats.unlinked > 0 || !report.demo_files.is_empty() {
                    print!("{out}");
                    return Err(CliError::Other(
                        "some records in the store are not shown (listed above)".into(),
                    ));
                }
                Ok(out)
            }))
            .await?
        }
    };
    print!("{out}");
    Ok(())
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
