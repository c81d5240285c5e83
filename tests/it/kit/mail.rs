//! A real SMTP server for the e-mail tests: aiosmtpd (PyPI, installed into `.cache/mail/`
//! by `scripts/mail-test-server`) run by `tests/mail-server/serve.py`, one process per
//! test on a free loopback port, killed when the [`SmtpServer`] drops. It stores each
//! message it accepts in a Maildir, byte for byte, and tells the test on its stdout.
//!
//! ```ignore
//! let smtp = SmtpServer::start(SmtpOptions::starttls_with_auth()).await;
//! let courier = examroom::notify::open(&smtp.settings());   // [mail] pointing at it
//! courier.deliver(&to, &notice).await.unwrap();
//! let mail = smtp.next_for("pat@example.org").await;        // waits up to WAIT
//! let parsed = mail.parsed();                               // mail_parser::Message
//! assert_eq!(parsed.subject(), Some("Appointment booked: …"));
//! assert_eq!(mail.header("X-Peer-TLS"), Some("TLSv1.3".into()));
//! ```
//!
//! The python comes from `$EXAMROOM_TEST_SMTP_PYTHON` (what `scripts/mail-test-server
//! --env` prints), else from `.cache/mail/venv`; when neither is there the test fails
//! saying how to install it.

use crate::kit::WAIT;
use examroom::config::{MailSettings, MailTls, Secret, Settings};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

/// How the test server listens.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub tls: MailTls,
    /// `(user, password)` it requires before MAIL FROM; `None`: no AUTH at all.
    pub auth: Option<(String, String)>,
    /// RCPT TO replies other than 250, by address: `("full@x", "452 4.2.2 Mailbox full")`.
    pub replies: Vec<(String, String)>,
}

pub const SMTP_USER: &str = "clinic-relay";
pub const SMTP_PASSWORD: &str = "relay-password-0123";

impl SmtpOptions {
    /// The usual submission set-up: STARTTLS required, then AUTH required.
    pub fn starttls_with_auth() -> Self {
        SmtpOptions {
            tls: MailTls::Starttls,
            auth: Some((SMTP_USER.into(), SMTP_PASSWORD.into())),
            replies: Vec::new(),
        }
    }

    pub fn implicit_with_auth() -> Self {
        SmtpOptions {
            tls: MailTls::Implicit,
            ..Self::starttls_with_auth()
        }
    }

    /// A relay on this machine that trusts it: no TLS, no AUTH.
    pub fn plain_local() -> Self {
        SmtpOptions {
            tls: MailTls::None,
            auth: None,
            replies: Vec::new(),
        }
    }

    pub fn reply(mut self, address: &str, line: &str) -> Self {
        self.replies.push((address.into(), line.into()));
        self
    }
}

/// One message as the server stored it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The bytes after the server's own `X-…` lines: the message as it arrived.
    pub raw: Vec<u8>,
    /// The whole file, with the server's lines on top.
    pub stored: Vec<u8>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("the message parses")
    }

    /// A header the server added about the session (`X-MailFrom`, `X-RcptTo`,
    /// `X-Peer-TLS`, `X-Authenticated`).
    pub fn session(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.stored[..self.stored.len() - self.raw.len()])
            .into_owned();
        text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn recipients(&self) -> Vec<String> {
        self.session("X-RcptTo")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn from_file(stored: Vec<u8>) -> Received {
        // The server writes its four lines, each CRLF-terminated, before the message.
        let mut at = 0;
        for _ in 0..4 {
            let nl = stored[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("the server's session lines");
            at += nl + 2;
        }
        Received {
            raw: stored[at..].to_vec(),
            stored,
        }
    }
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Received>,
    /// Indexes `next_for` handed out already.
    taken: Vec<bool>,
}

pub struct SmtpServer {
    child: tokio::process::Child,
    pub port: u16,
    pub tls: MailTls,
    /// The self-signed certificate it presents (for `localhost` and `127.0.0.1`).
    pub cert: PathBuf,
    pub maildir: PathBuf,
    pub log: PathBuf,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The venv python with aiosmtpd, or a panic that says how to get it.
pub fn smtp_python() -> PathBuf {
    const HOW: &str = "the SMTP test server (PyPI aiosmtpd) is not installed: run \
                       `scripts/mail-test-server` and export what it prints \
                       (or `eval \"$(scripts/mail-test-server --env)\"`)";
    let p = match std::env::var_os("EXAMROOM_TEST_SMTP_PYTHON") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/mail/venv/bin/python"),
    };
    assert!(p.exists(), "{} missing: {HOW}", p.display());
    p
}

impl SmtpServer {
    pub async fn start(opts: SmtpOptions) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let maildir = dir.path().join("Maildir");
        let log = dir.path().join("smtp.log");
        let tls = match opts.tls {
            MailTls::Starttls => "starttls",
            MailTls::Implicit => "implicit",
            MailTls::None => "none",
        };
        let mut cmd = tokio::process::Command::new(smtp_python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mail-server/serve.py"))
            .arg("--maildir")
            .arg(&maildir)
            .args(["--tls", tls])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key);
        if let Some((user, password)) = &opts.auth {
            cmd.args(["--user", user, "--password", password]);
        }
        for (address, line) in &opts.replies {
            cmd.args(["--reply", address, line]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", smtp_python().display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the SMTP server did not start in 30 s; see {}",
                    log.display()
                )
            })
            .unwrap();
        let port: u16 = first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening "))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the SMTP server did not start ({first:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let arrived = Arc::new(Notify::new());
        let (inbox2, arrived2, new_dir) = (inbox.clone(), arrived.clone(), maildir.join("new"));
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(name) = line.strip_prefix("received ") else {
                    continue;
                };
                let stored = tokio::fs::read(new_dir.join(name.trim())).await.unwrap();
                let mut inbox = inbox2.lock().unwrap();
                inbox.messages.push(Received::from_file(stored));
                inbox.taken.push(false);
                drop(inbox);
                arrived2.notify_waiters();
            }
        });
        SmtpServer {
            child,
            port,
            tls: opts.tls,
            cert,
            maildir,
            log,
            inbox,
            arrived,
            _dir: dir,
        }
    }

    /// `[mail]` settings for a courier that delivers here, trusting the server's
    /// certificate and logging in with the server's user when it has one.
    pub fn mail_settings(&self) -> MailSettings {
        MailSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: self.tls,
            username: SMTP_USER.into(),
            password: Secret::new(SMTP_PASSWORD),
            from_address: "appointments@visits.example".into(),
            from_name: "Riverside Appointments".into(),
            timeout_ms: 5_000,
            ca_cert: (self.tls != MailTls::None).then(|| self.cert.clone()),
        }
    }

    /// Whole server settings with `[mail]` from [`Self::mail_settings`], the clinic named
    /// and a public URL (the calendar UIDs' host), validated like a real start.
    pub fn settings(&self) -> Settings {
        let mut s = Settings {
            mail: self.mail_settings(),
            ..Default::default()
        };
        s.clinic.name = "Riverside Practice".into();
        s.server.public_url = "https://visits.example".into();
        s.validate().expect("the test's settings are valid");
        s
    }

    /// The next message for `address` not handed out yet, waiting up to [`WAIT`] for it.
    pub async fn next_for(&self, address: &str) -> Received {
        let address = address.to_ascii_lowercase();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut inbox = self.inbox.lock().unwrap();
                let found = (0..inbox.messages.len()).find(|&i| {
                    !inbox.taken[i] && inbox.messages[i].recipients().contains(&address)
                });
                if let Some(i) = found {
                    inbox.taken[i] = true;
                    return inbox.messages[i].clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "no message for {address} within {WAIT:?}; server log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
        }
    }

    /// How many messages arrived so far, for any address.
    pub fn count(&self) -> usize {
        self.inbox.lock().unwrap().messages.len()
    }
}
