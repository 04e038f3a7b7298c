//! Outgoing mail: `[identity.smtp]` settings, the SMTP transport (the
//! `lettre` crate, rustls or plain), and the outbox sender — a background
//! task that sends queued mail (`outbox_emails`), retries failures with
//! exponential backoff and records the last error. Delivery is
//! at-least-once: a mail is claimed for a lease before it is sent, so a
//! replica that dies mid-send leaves it to be sent again, and replicas
//! never send the same mail at the same time.
//!
//! Services queue mail with [`email_row`] inside their own transaction (an
//! invitation and its mail are written together) and wake the sender.
//!
//! Must not: decide what to send or to whom (identity does), or log
//! message bodies (they carry single-use links).

use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::outbox::OutboxEmailRow;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a local relay only).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (default port 465).
    Tls,
}

/// `[identity.smtp]`: the mail server that delivers invitation and verification links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 25 (`none`), 587 (`starttls`), 465 (`tls`).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, serialize_with = "agentry_llm::providers::serialize_secret")]
    pub password: Option<SecretString>,
    /// The sender: `Agentry <noreply@example.com>` or a bare address.
    pub from: String,
    #[serde(default)]
    pub tls: SmtpTls,
    /// First retry delay after a failed send, in seconds; doubles per attempt up to an hour.
    #[serde(default = "default_retry_base_secs")]
    pub retry_base_secs: u64,
}

fn default_retry_base_secs() -> u64 {
    30
}

impl PartialEq for SmtpSettings {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.username == other.username
            && self.password.as_ref().map(|p| p.expose_secret().to_owned()) == other.password.as_ref().map(|p| p.expose_secret().to_owned())
            && self.from == other.from
            && self.tls == other.tls
            && self.retry_base_secs == other.retry_base_secs
    }
}

impl Eq for SmtpSettings {}

/// Why mail could not be configured or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("identity.smtp: {0}")]
    Config(String),
    #[error("{0}")]
    Send(String),
}

/// Attempts after which a mail is left unsent (with its last error).
pub const MAX_ATTEMPTS: i64 = 10;
/// How long a claimed mail is reserved for its sender.
const LEASE: Duration = Duration::from_secs(120);
/// How often the sender looks for due mail when nobody wakes it (mail queued on another replica, retries).
const POLL: Duration = Duration::from_secs(2);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A mail to queue: due now, never tried.
pub fn email_row(recipient: &str, subject: &str, body: String, now_ms: i64) -> OutboxEmailRow {
    OutboxEmailRow {
        id: uuid::Uuid::now_v7().to_string(),
        recipient: recipient.to_owned(),
        subject: subject.to_owned(),
        body,
        created_at_ms: now_ms,
        attempts: 0,
        next_try_ms: now_ms,
        sent_at_ms: None,
        last_error: None,
    }
}

/// The delay before the next attempt after `attempts` failed ones.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(2u32.saturating_pow(doublings)).min(MAX_BACKOFF)
}

/// An SMTP connection pool for one configured server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Check the settings and build the transport (connects only when sending).
    /// `hello` is the name given in EHLO (this server's public host).
    pub fn new(settings: &SmtpSettings, hello: Option<&str>) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|e| MailError::Config(format!("from '{}' is not a mail address: {e}", settings.from)))?;
        if settings.host.trim().is_empty() {
            return Err(MailError::Config("host is empty".into()));
        }
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str()),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host).map_err(|e| MailError::Config(format!("host: {e}")))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host).map_err(|e| MailError::Config(format!("host: {e}")))?,
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(30)));
        if let Some(port) = settings.port {
            builder = builder.port(port);
        }
        if let Some(hello) = hello {
            builder = builder.hello_name(ClientId::Domain(hello.to_owned()));
        }
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned())),
            (None, None) => {}
            _ => return Err(MailError::Config("set both username and password, or neither".into())),
        }
        Ok(Self { transport: builder.build(), from })
    }

    /// Send one queued mail.
    pub async fn send(&self, mail: &OutboxEmailRow) -> Result<(), MailError> {
        let to: Mailbox = mail.recipient.parse().map_err(|e| MailError::Send(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| MailError::Send(format!("message: {e}")))?;
        self.transport.send(message).await.map(drop).map_err(|e| MailError::Send(e.to_string()))
    }
}

/// The background task that empties the outbox. Cheap to clone.
#[derive(Clone)]
pub struct OutboxSender {
    db: Db,
    mailer: Mailer,
    retry_base: Duration,
    wake: Arc<Notify>,
}

impl OutboxSender {
    pub fn new(db: Db, mailer: Mailer, retry_base: Duration, wake: Arc<Notify>) -> Self {
        Self { db, mailer, retry_base, wake }
    }

    /// Send due mail until `stop`; woken at once when mail is queued in this process.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.send_due() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One round: every due mail, each claimed before it is sent.
    async fn send_due(&self) {
        let now = crate::identity::now_ms();
        let due = match self.db.due_outbox_emails(now, MAX_ATTEMPTS, 50).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "outbox: cannot read due mail");
                return;
            }
        };
        for mail in due {
            let lease_until = crate::identity::now_ms() + LEASE.as_millis() as i64;
            match self.db.claim_outbox_email(&mail.id, mail.next_try_ms, lease_until).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "outbox: cannot claim mail");
                    return;
                }
            }
            let attempts = mail.attempts + 1;
            let result = match self.mailer.send(&mail).await {
                Ok(()) => {
                    tracing::info!(id = %mail.id, attempts, "outbox: mail sent");
                    self.db.mark_outbox_email_sent(&mail.id, crate::identity::now_ms()).await
                }
                Err(error) => {
                    let retry_in = backoff(self.retry_base, attempts);
                    let gives_up = attempts >= MAX_ATTEMPTS;
                    tracing::warn!(id = %mail.id, attempts, %error, retry_in_secs = retry_in.as_secs(), gives_up, "outbox: sending failed");
                    let next = crate::identity::now_ms() + retry_in.as_millis() as i64;
                    self.db.retry_outbox_email(&mail.id, next, &error.to_string()).await
                }
            };
            if let Err(error) = result {
                tracing::warn!(%error, id = %mail.id, "outbox: cannot record the sending outcome");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn settings_are_checked() {
        let good = SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(2525),
            username: None,
            password: None,
            from: "Agentry <noreply@example.com>".into(),
            tls: SmtpTls::None,
            retry_base_secs: 30,
        };
        assert!(Mailer::new(&good, Some("agentry.example.com")).is_ok());
        assert!(Mailer::new(&SmtpSettings { from: "not an address".into(), ..good.clone() }, None).is_err());
        assert!(Mailer::new(&SmtpSettings { username: Some("u".into()), ..good.clone() }, None).is_err());
        let parsed: SmtpSettings = serde_json::from_value(serde_json::json!({ "host": "smtp.example.com", "from": "a@example.com", "password": "s3cret" })).unwrap();
        assert_eq!(parsed.tls, SmtpTls::Starttls);
        assert!(!format!("{parsed:?}").contains("s3cret"), "the password is never printed");
    }
}
