//! `examroom-load`: drive concurrent visits against a running examroom (or PeerJS server)
//! and print what was measured as one JSON line on stdout (a summary goes to stderr).
//!
//! ```text
//! examroom-load --server examroom --url ws://127.0.0.1:8181/ws --data-dir /tmp/d \
//!     --server-pid 1234 --mode open --visits 500 --rate 5000 --duration 10
//! examroom-load --server peerjs --url ws://127.0.0.1:9000/peerjs --server-pid 1240 \
//!     --mode idle --idle 10000 --visits 50 --rate 1000
//! ```
//! For examroom, fixtures (physicians, rooms, sessions) are written into the server's store
//! under `--data-dir`, and tokens are signed with `EXAMROOM__IDENTITY__TOKEN_SECRET` — the
//! same variable the server reads.

use clap::{Parser, ValueEnum};
use examroom::config::{Secret, Settings};
use examroom::identity::TokenKeys;
use examroom_load::{LoadConfig, Report, Server, Target, fixture};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Examroom,
    Peerjs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A fixed total message rate (`--rate`), whatever the server does.
    Open,
    /// Each visit keeps one candidate in flight: as fast as the server answers.
    Closed,
    /// Connect `--idle` waiting participants and hold them; `--visits` run meanwhile at `--rate`.
    Idle,
}

#[derive(Debug, Parser)]
#[command(
    name = "examroom-load",
    about = "Load generator for examroom signalling (and PeerJS server)"
)]
struct Args {
    #[arg(long, value_enum, default_value = "examroom")]
    server: Kind,
    /// WebSocket URL: ws://IP:PORT/ws (examroom) or ws://IP:PORT/peerjs (PeerJS server).
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "open")]
    mode: Mode,
    /// Concurrent visits.
    #[arg(long, default_value_t = 100)]
    visits: usize,
    /// Total relayed messages per second (open loop, and visits during idle).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Idle connections (mode idle).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Idle patients per waiting room (examroom).
    #[arg(long, default_value_t = 20)]
    idle_per_room: usize,
    /// Measurement window, seconds (mode idle: how long to hold).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 120.0)]
    setup_timeout: f64,
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N.
    #[arg(long, default_value_t = 4)]
    source_addrs: u8,
    /// Server process id, for CPU time and memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// examroom: the server's data folder (fixtures are written into its store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// examroom: the server's database when it is not the SQLite file under --data-dir
    /// (PostgreSQL for a node of several).
    #[arg(long, env = "EXAMROOM__DATABASE__URL", hide_env_values = true)]
    database_url: Option<String>,
    /// examroom: the server's token secret.
    #[arg(long, env = "EXAMROOM__IDENTITY__TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// PeerJS server key.
    #[arg(long, default_value = "peerjs")]
    peerjs_key: String,
    #[arg(long, default_value_t = 3000)]
    sdp_bytes: usize,
    #[arg(long, default_value_t = 300)]
    candidate_bytes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One thread: pin the generator with `taskset` and it stays on its core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serialises")
            );
            summary(&report);
            let clean = report.visits_failed == 0
                && report.visits_broken == 0
                && report.idle_failed == 0
                && report.idle_dropped == 0;
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("examroom-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> Result<Report, String> {
    let visits = a.visits;
    let idle = if a.mode == Mode::Idle { a.idle } else { 0 };
    let cfg = LoadConfig {
        visits,
        rate: (a.mode != Mode::Closed).then_some(a.rate),
        idle,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        setup_timeout: Duration::from_secs_f64(a.setup_timeout),
        connect_concurrency: a.connect_concurrency,
        source_addrs: a.source_addrs,
        end_visits: true,
        server_pid: a.server_pid,
        sdp_bytes: a.sdp_bytes,
        candidate_bytes: a.candidate_bytes,
        ..LoadConfig::default()
    };
    let target = match a.server {
        Kind::Peerjs => Target {
            server: Server::PeerJs,
            url: a.url,
            nodes: Vec::new(),
            fixtures: Default::default(),
            peerjs_key: a.peerjs_key,
        },
        Kind::Examroom => {
            let dir = a.data_dir.ok_or("--data-dir is required for examroom")?;
            let secret = a
                .token_secret
                .ok_or("EXAMROOM__IDENTITY__TOKEN_SECRET (or --token-secret) is required")?;
            let mut settings = Settings::default();
            settings.server.data_dir = dir;
            if let Some(url) = a.database_url {
                settings.database.url = Secret::new(url);
            }
            let store = examroom::durable::open(&settings)
                .await
                .map_err(|e| format!("opening the store: {e}"))?;
            let keys = TokenKeys::new(&Secret::new(secret));
            let tag = &examroom::ids::random_id()[..10];
            let t = std::time::Instant::now();
            let fixtures = fixture::prepare(&store, &keys, tag, visits, idle, a.idle_per_room)
                .await
                .map_err(|e| format!("creating fixtures: {e}"))?;
            eprintln!(
                "fixtures: {visits} visits, {idle} idle patients in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            Target {
                server: Server::Examroom,
                url: a.url,
                nodes: Vec::new(),
                fixtures,
                peerjs_key: String::new(),
            }
        }
    };
    Ok(examroom_load::run(&cfg, &target).await)
}

fn summary(r: &Report) {
    let p = |name: &str, x: &examroom_load::Percentiles| {
        if x.count > 0 {
            eprintln!(
                "  {name:<6} n={:<8} p50={:>9.1}µs p90={:>9.1}µs p99={:>9.1}µs max={:>9.1}µs",
                x.count, x.p50_us, x.p90_us, x.p99_us, x.max_us
            );
        }
    };
    eprintln!(
        "{:?}: visits {}/{} ready ({} failed, {} broke), relayed {} in {:.1}s = {:.0}/s",
        r.server.expect("set"),
        r.visits_ready,
        r.visits,
        r.visits_failed,
        r.visits_broken,
        r.relayed,
        r.window_secs,
        r.relayed_per_sec
    );
    if let Some(c) = r.server_cpu_us_per_msg {
        eprintln!(
            "  server CPU {:.2}s = {c:.1}µs/msg (waited for a CPU {:.2}s); generator CPU {:.2}s (waited {:.2}s)",
            r.server_cpu_secs,
            r.server_runqueue_wait_secs,
            r.generator_cpu_secs,
            r.generator_runqueue_wait_secs
        );
    }
    p("relay", &r.relay);
    p("sdp", &r.sdp);
    p("join", &r.join);
    p("admit", &r.admit);
    if r.idle > 0 {
        eprintln!(
            "  idle {}/{} connected ({} failed, {} dropped) in {:.1}s; RSS {} → {} KiB = {:.2} KiB/conn; end {} KiB",
            r.idle_connected,
            r.idle,
            r.idle_failed,
            r.idle_dropped,
            r.idle_connect_secs,
            r.rss_before_kib,
            r.rss_idle_kib,
            r.rss_per_idle_conn_kib.unwrap_or(f64::NAN),
            r.rss_end_kib
        );
    }
    if let Some(per) = r.rss_per_call_conn_kib {
        eprintln!(
            "  in call: {} connections, RSS {} KiB = {per:.2} KiB/conn",
            2 * r.visits_ready,
            r.rss_in_call_kib
        );
    }
    for e in &r.error_samples {
        eprintln!("  error: {e}");
    }
}
