//! Invitations, not passwords: the account pre-hijacking attack refused,
//! mail delivery through the outbox against an in-test SMTP server, expiry,
//! revocation, single use, the per-tenant sending limit, the role ceiling,
//! and e-mail verification.

use std::time::Duration;

use agentry_core::identity::IdentitySettings;
use agentry_core::mail::{SmtpSettings, SmtpTls};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, MASTER_KEY, PASSWORD, TestApp, TestOptions, assert_error, send, spawn_app, spawn_app_with};
use smtp_sink::SmtpSink;

const CFO: &str = "cfo@victim.example";
const ATTACKER_PASSWORD: &str = "attacker chose this 1";

async fn invite(app: &TestApp, token: &str, tenant: &str, email: &str, role: &str) -> (u16, Value) {
    send(app, token, Method::POST, &format!("/api/v1/tenants/{tenant}/users"), Some(json!({ "email": email, "role": role }))).await
}

async fn accept_new(app: &TestApp, token: &str, password: &str) -> (u16, Value) {
    let response = app.client.post(app.url("/api/v1/auth/invitations/accept")).json(&json!({ "token": token, "password": password })).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Platform admin (also acme's admin) with a second tenant, globex.
async fn two_tenants(app: &TestApp) -> String {
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, _) = send(app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
    assert_eq!(status, 201);
    admin
}

fn smtp_options(sink: &SmtpSink) -> TestOptions {
    let identity = IdentitySettings {
        self_registration: true,
        public_url: Some("https://agentry.example.com".into()),
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(sink.port),
            username: None,
            password: None,
            from: "Agentry <noreply@agentry.example.com>".into(),
            tls: SmtpTls::None,
            retry_base_secs: 1,
        }),
        ..IdentitySettings::default()
    };
    TestOptions { identity, ..TestOptions::default() }
}

/// Tenant A's admin adds the CFO's address; tenant B later adds the same
/// address. Whoever holds A's link must not get into B.
#[tokio::test]
async fn account_pre_hijacking_through_an_invitation_is_refused() {
    pre_hijacking(&spawn_app().await).await;
}

#[tokio::test]
async fn account_pre_hijacking_through_an_invitation_is_refused_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    pre_hijacking(&spawn_app_with(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await).await;
}

async fn pre_hijacking(app: &TestApp) {
    let admin = two_tenants(app).await;

    // No admin sets another person's password.
    let (status, error) = send(app, &admin, Method::POST, "/api/v1/tenants/acme/users", Some(json!({ "email": CFO, "password": ATTACKER_PASSWORD, "role": "user" }))).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "password");
    assert!(error["error"]["message"].as_str().unwrap().contains("invitation"), "{error}");

    // Without SMTP the link is shown to the inviter.
    let (status, in_a) = invite(app, &admin, "acme", CFO, "user").await;
    assert_eq!(status, 201, "{in_a}");
    assert_eq!(in_a["status"], "pending");
    assert_eq!(in_a["delivered"], "link");
    assert_eq!(in_a["email"], CFO);
    assert!(in_a["expires_at_ms"].as_i64().unwrap() > in_a["created_at_ms"].as_i64().unwrap() + 6 * 86_400_000);
    let link_a = in_a["accept_token"].as_str().unwrap().to_owned();
    let (status, in_b) = invite(app, &admin, "globex", CFO, "admin").await;
    assert_eq!(status, 201);
    let link_b = in_b["accept_token"].as_str().unwrap().to_owned();
    assert_ne!(link_a, link_b);
    let listed = send(app, &admin, Method::GET, "/api/v1/tenants/acme/invitations", None).await.1;
    assert!(!listed.to_string().contains(&link_a), "tokens are never listed");

    // Whoever holds A's link creates the account with a password of their choosing: it is unverified.
    let (status, accepted) = accept_new(app, &link_a, ATTACKER_PASSWORD).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["tenant_slug"], "acme");
    assert_eq!(accepted["email_verified"], false);
    let user_id = accepted["user_id"].as_str().unwrap().to_owned();
    let holder = accepted["tokens"]["access_token"].as_str().unwrap().to_owned();
    let me = send(app, &holder, Method::GET, "/api/v1/auth/me", None).await.1;
    assert_eq!(me["user"]["email_verified"], false);

    // A's link is spent, and it only ever meant A.
    let (status, again) = accept_new(app, &link_a, ATTACKER_PASSWORD).await;
    assert_eq!(status, 400, "{again}");
    // B's link, presented by the account from A's link: refused while unverified.
    let (status, refused) = send(app, &holder, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": link_b }))).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("not verified"), "{refused}");
    assert_eq!(send(app, &holder, Method::GET, "/api/v1/tenants/globex", None).await.0, 404);
    // The real person with B's link cannot make a second account for the address: they are told to sign in.
    let (status, conflict) = accept_new(app, &link_b, PASSWORD).await;
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict["error"]["message"].as_str().unwrap().contains("/api/v1/invitations/accept"), "{conflict}");
    // Not a platform admin: cannot verify itself.
    let (status, _) = send(app, &holder, Method::POST, &format!("/api/v1/admin/users/{user_id}/verify-email"), None).await;
    assert_eq!(status, 403);

    // A platform administrator vouches for the address; then the account may join B.
    let (status, _) = send(app, &admin, Method::POST, &format!("/api/v1/admin/users/{user_id}/verify-email"), None).await;
    assert_eq!(status, 204);
    let (status, joined) = send(app, &holder, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": link_b }))).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["tenant_slug"], "globex");
    assert_eq!(joined["role"], "admin");
    assert_eq!(send(app, &holder, Method::GET, "/api/v1/tenants/globex", None).await.0, 200);
    let (status, _) = send(app, &admin, Method::POST, "/api/v1/admin/users/00000000-0000-0000-0000-000000000000/verify-email", None).await;
    assert_eq!(status, 404);

    // Audited in B's chain, the refusal included.
    let audit = send(app, &admin, Method::GET, "/api/v1/tenants/globex/audit?limit=100", None).await.1;
    let events: Vec<(String, String)> =
        audit["data"].as_array().unwrap().iter().map(|e| (e["action"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned())).collect();
    for (action, outcome) in [("invitation.create", "success"), ("invitation.accept", "denied"), ("invitation.accept", "success"), ("membership.create", "success")] {
        assert!(events.contains(&(action.to_owned(), outcome.to_owned())), "{action} {outcome} missing from {events:?}");
    }
    let platform = send(app, &admin, Method::GET, "/api/v1/admin/audit?action=user.verify_email", None).await.1;
    assert!(platform.to_string().contains("platform_admin"), "{platform}");
}

#[tokio::test]
async fn accepting_needs_the_invited_address_and_a_signed_in_user() {
    let app = spawn_app().await;
    let admin = two_tenants(&app).await;
    app.add_member(&admin, "acme", "someone@example.com", "user").await;
    let someone = app.token("someone@example.com").await;
    let (_, invitation) = invite(&app, &admin, "globex", "other@example.com", "user").await;
    let token = invitation["accept_token"].as_str().unwrap();
    let (status, wrong) = send(&app, &someone, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": token }))).await;
    assert_eq!(status, 403, "{wrong}");
    let (status, _) = send(&app, MASTER_KEY, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": token }))).await;
    assert_eq!(status, 400, "the master key is nobody's account");
    let (status, _) = send(&app, &someone, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": "agi_nonsense" }))).await;
    assert_eq!(status, 400);
    // Weak passwords are refused by the policy; the invitation stays usable.
    let (status, _) = accept_new(&app, token, "weak").await;
    assert_eq!(status, 400);
    let (status, _) = accept_new(&app, token, PASSWORD).await;
    assert_eq!(status, 201);
    // Inviting a member is a conflict.
    let (status, _) = invite(&app, &admin, "globex", "other@example.com", "viewer").await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn invitation_links_expire_are_single_use_and_can_be_revoked() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;

    // Single use.
    let (_, first) = invite(&app, &admin, "acme", "once@example.com", "user").await;
    let token = first["accept_token"].as_str().unwrap();
    assert_eq!(accept_new(&app, token, PASSWORD).await.0, 201);
    let (status, used) = accept_new(&app, token, PASSWORD).await;
    assert_eq!(status, 400);
    assert!(used["error"]["message"].as_str().unwrap().contains("already used"), "{used}");

    // Revoked: the link stops working; an accepted one cannot be revoked.
    let (_, second) = invite(&app, &admin, "acme", "revoked@example.com", "user").await;
    let id = second["id"].as_str().unwrap();
    assert_eq!(send(&app, &admin, Method::DELETE, &format!("/api/v1/tenants/acme/invitations/{id}"), None).await.0, 204);
    let (status, revoked) = accept_new(&app, second["accept_token"].as_str().unwrap(), PASSWORD).await;
    assert_eq!(status, 400);
    assert!(revoked["error"]["message"].as_str().unwrap().contains("revoked"), "{revoked}");
    let accepted_id = first["id"].as_str().unwrap();
    assert_eq!(send(&app, &admin, Method::DELETE, &format!("/api/v1/tenants/acme/invitations/{accepted_id}"), None).await.0, 400);
    assert_eq!(send(&app, &admin, Method::DELETE, "/api/v1/tenants/acme/invitations/00000000-0000-0000-0000-000000000000", None).await.0, 404);
    // A new invitation to the same address replaces a pending one.
    let (_, old) = invite(&app, &admin, "acme", "twice@example.com", "user").await;
    let (_, new) = invite(&app, &admin, "acme", "twice@example.com", "viewer").await;
    assert_eq!(accept_new(&app, old["accept_token"].as_str().unwrap(), PASSWORD).await.0, 400);
    assert_eq!(accept_new(&app, new["accept_token"].as_str().unwrap(), PASSWORD).await.1["role"], "viewer");

    let listed = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/invitations", None).await.1;
    let status_of = |id: &str| listed["data"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()["status"].as_str().unwrap().to_owned();
    assert_eq!(status_of(accepted_id), "accepted");
    assert_eq!(status_of(id), "revoked");
    let audit = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit?action=invitation.revoke", None).await.1;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");

    // Expiry (a one-second lifetime).
    let identity = IdentitySettings { invitation_ttl_secs: 1, ..IdentitySettings::default() };
    let short = spawn_app_with(TestOptions { identity, ..TestOptions::default() }).await;
    short.bootstrap().await;
    let admin = short.token(ADMIN_EMAIL).await;
    let (_, invitation) = invite(&short, &admin, "acme", "late@example.com", "user").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, expired) = accept_new(&short, invitation["accept_token"].as_str().unwrap(), PASSWORD).await;
    assert_eq!(status, 400);
    assert!(expired["error"]["message"].as_str().unwrap().contains("expired"), "{expired}");
    let listed = send(&short, &admin, Method::GET, "/api/v1/tenants/acme/invitations", None).await.1;
    assert_eq!(listed["data"][0]["status"], "expired");
}

#[tokio::test]
async fn invitations_are_rate_limited_per_tenant() {
    let identity = IdentitySettings { invitations_per_hour: 3, ..IdentitySettings::default() };
    let app = spawn_app_with(TestOptions { identity, ..TestOptions::default() }).await;
    let admin = two_tenants(&app).await;
    for n in 0..3 {
        assert_eq!(invite(&app, &admin, "acme", &format!("p{n}@example.com"), "user").await.0, 201);
    }
    let response = app.with(Method::POST, "/api/v1/tenants/acme/users", &admin).json(&json!({ "email": "p3@example.com", "role": "user" })).send().await.unwrap();
    let retry_after: u64 = response.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "rate_limit_exceeded").await;
    // Another tenant has its own budget.
    assert_eq!(invite(&app, &admin, "globex", "p3@example.com", "user").await.0, 201);
}

#[tokio::test]
async fn the_invited_role_is_bounded_by_the_inviter() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, _) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/recruiter", Some(json!({ "permissions": ["manage_users"] }))).await;
    assert_eq!(status, 200);
    app.add_member(&admin, "acme", "recruiter@example.com", "recruiter").await;
    let recruiter = app.token("recruiter@example.com").await;
    for role in ["admin", "viewer", "user"] {
        let (status, error) = invite(&app, &recruiter, "acme", "new@example.com", role).await;
        assert_eq!(status, 403, "{role}: {error}");
    }
    let (status, _) = invite(&app, &recruiter, "acme", "new@example.com", "recruiter").await;
    assert_eq!(status, 201);
    let (status, _) = invite(&app, &recruiter, "acme", "new@example.com", "wizard").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn invitations_and_verification_are_mailed_through_smtp() {
    let sink = SmtpSink::start(0).await;
    mailed(&spawn_app_with(smtp_options(&sink)).await, &sink).await;
}

#[tokio::test]
async fn invitations_and_verification_are_mailed_through_smtp_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let sink = SmtpSink::start(0).await;
    mailed(&spawn_app_with(TestOptions { postgres_url: Some(url), ..smtp_options(&sink) }).await, &sink).await;
}

async fn mailed(app: &TestApp, sink: &SmtpSink) {
    let admin = two_tenants(app).await;

    // The invitation is mailed; the answer carries no link.
    let (status, invitation) = invite(app, &admin, "acme", "new.person@example.com", "user").await;
    assert_eq!(status, 201, "{invitation}");
    assert_eq!(invitation["delivered"], "email");
    assert!(invitation.get("accept_token").is_none() && invitation.get("accept_url").is_none(), "{invitation}");
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.to, vec!["new.person@example.com".to_owned()]);
    assert!(mail.from.contains("noreply@agentry.example.com"), "{}", mail.from);
    assert!(mail.text.contains("Subject: You are invited to Acme"), "{}", mail.text);
    let token = mail.token("agi_");
    assert!(mail.text.contains(&format!("https://agentry.example.com/accept-invitation?token={token}")), "{}", mail.text);

    // Following the mailed link proves the mailbox: the new account is verified.
    let (status, accepted) = accept_new(app, &token, PASSWORD).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["email_verified"], true);
    assert!(accepted["tokens"]["refresh_token"].is_string());
    let person = app.token("new.person@example.com").await;
    assert_eq!(send(app, &person, Method::GET, "/api/v1/tenants/acme", None).await.1["role"], "user");

    // A second tenant's mailed invitation: the existing account signs in and accepts.
    invite(app, &admin, "globex", "new.person@example.com", "viewer").await;
    let token = sink.wait_for(2).await[1].token("agi_");
    assert_eq!(accept_new(app, &token, PASSWORD).await.0, 409);
    let (status, joined) = send(app, &person, Method::POST, "/api/v1/invitations/accept", Some(json!({ "token": token }))).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["tenant_slug"], "globex");

    // Self-registration queues a verification mail; its link verifies the address once.
    let (status, _) = send(app, "", Method::POST, "/api/v1/auth/register", Some(json!({ "email": "self@example.com", "password": PASSWORD }))).await;
    assert_eq!(status, 201);
    let mail = sink.wait_for(3).await.remove(2);
    assert_eq!(mail.to, vec!["self@example.com".to_owned()]);
    let token = mail.token("agv_");
    let registered = app.token("self@example.com").await;
    assert_eq!(send(app, &registered, Method::GET, "/api/v1/auth/me", None).await.1["user"]["email_verified"], false);
    let (status, verified) = send(app, "", Method::POST, "/api/v1/auth/verify-email", Some(json!({ "token": token }))).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(send(app, &registered, Method::GET, "/api/v1/auth/me", None).await.1["user"]["email_verified"], true);
    assert_eq!(send(app, "", Method::POST, "/api/v1/auth/verify-email", Some(json!({ "token": token }))).await.0, 400);
    assert_eq!(send(app, &registered, Method::POST, "/api/v1/auth/verify-email/resend", None).await.0, 409, "already verified");

    // Every mail was recorded as sent.
    let db = agentry_db::Db::connect(&app.database_url).await.unwrap();
    let outbox = db.outbox_emails(10).await.unwrap();
    assert_eq!(outbox.len(), 3);
    assert!(outbox.iter().all(|m| m.sent_at_ms.is_some() && m.attempts == 1), "{outbox:?}");
    assert!(outbox.iter().all(|m| m.body.is_empty()), "sent mail keeps no one-time links: {outbox:?}");
}

#[tokio::test]
async fn the_outbox_retries_failed_mail_and_records_the_error() {
    let sink = SmtpSink::start(1).await;
    let app = spawn_app_with(smtp_options(&sink)).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    assert_eq!(invite(&app, &admin, "acme", "retry@example.com", "user").await.0, 201);
    let db = agentry_db::Db::connect(&app.database_url).await.unwrap();
    let mut failed = None;
    for _ in 0..100 {
        let rows = db.outbox_emails(1).await.unwrap();
        if rows.first().is_some_and(|m| m.last_error.is_some() || m.sent_at_ms.is_some()) {
            failed = rows.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = failed.expect("a first attempt");
    assert!(failed.sent_at_ms.is_none(), "the first attempt was refused: {failed:?}");
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("451") || e.to_lowercase().contains("try again")), "{failed:?}");
    assert_eq!(failed.attempts, 1);
    // Retried after the backoff (one second here) and delivered.
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.to, vec!["retry@example.com".to_owned()]);
    let mut sent = None;
    for _ in 0..100 {
        let row = db.outbox_emails(1).await.unwrap().remove(0);
        if row.sent_at_ms.is_some() {
            sent = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent.expect("marked sent").attempts, 2);
}

#[tokio::test]
async fn smtp_configuration_is_checked_at_start() {
    let smtp =
        SmtpSettings { host: "127.0.0.1".into(), port: Some(25), username: None, password: None, from: "noreply@example.com".into(), tls: SmtpTls::None, retry_base_secs: 1 };
    let identity = IdentitySettings { smtp: Some(smtp), ..IdentitySettings::default() };
    let mut settings = agentry_server::Settings { identity, ..agentry_server::Settings::default() };
    let dir = tempfile::tempdir().unwrap();
    settings.data_dir = dir.path().to_path_buf();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.local.enabled = false;
    settings.offline = true;
    let error = agentry_server::Application::build(settings).await.err().expect("refused without public_url");
    assert!(error.to_string().contains("public_url"), "{error}");
}

/// A tiny SMTP server for tests: speaks EHLO/HELO, MAIL, RCPT, DATA, RSET,
/// NOOP and QUIT, keeps every message, and can refuse the first recipients
/// with a temporary error.
mod smtp_sink {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use parking_lot::Mutex;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    #[derive(Debug, Clone)]
    pub struct Mail {
        pub from: String,
        pub to: Vec<String>,
        /// Headers and body, dot-unstuffed, quoted-printable decoded.
        pub text: String,
    }

    impl Mail {
        /// The first token with this prefix (32 bytes base64url).
        pub fn token(&self, prefix: &str) -> String {
            let start = self.text.find(prefix).unwrap_or_else(|| panic!("no {prefix} token in {}", self.text));
            self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
        }
    }

    pub struct SmtpSink {
        pub port: u16,
        mails: Arc<Mutex<Vec<Mail>>>,
    }

    impl SmtpSink {
        /// Listen on a free port; refuse the first `refuse_first` recipients with `451`.
        pub async fn start(refuse_first: usize) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mails = Arc::new(Mutex::new(Vec::new()));
            let refusals = Arc::new(AtomicUsize::new(refuse_first));
            let kept = mails.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, kept.clone(), refusals.clone()));
                }
            });
            Self { port, mails }
        }

        /// The mail received so far, once there are at least `count` (10 s at most).
        pub async fn wait_for(&self, count: usize) -> Vec<Mail> {
            for _ in 0..200 {
                let mails = self.mails.lock().clone();
                if mails.len() >= count {
                    return mails;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("fewer than {count} mails arrived: {:?}", self.mails.lock());
        }
    }

    async fn session(stream: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>, refusals: Arc<AtomicUsize>) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 sink ESMTP ready\r\n").await;
        let (mut from, mut to) = (String::new(), Vec::new());
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-sink greets you\r\n250 8BITMIME\r\n",
                "HELO" | "NOOP" => b"250 OK\r\n",
                "RSET" => {
                    (from, to) = (String::new(), Vec::new());
                    b"250 OK\r\n"
                }
                "MAIL" => {
                    from = address(&line);
                    b"250 OK\r\n"
                }
                "RCPT" => {
                    if refusals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                        b"451 4.3.0 try again later\r\n"
                    } else {
                        to.push(address(&line));
                        b"250 OK\r\n"
                    }
                }
                "DATA" => {
                    let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                    let mut raw = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line == "." {
                            break;
                        }
                        raw.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
                    }
                    let text = decode_quoted_printable(&raw.join("\n"));
                    mails.lock().push(Mail { from: from.clone(), to: std::mem::take(&mut to), text });
                    b"250 OK queued\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"502 not implemented\r\n",
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    }

    /// `MAIL FROM:<a@b>` → `a@b`.
    fn address(line: &str) -> String {
        line.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map(|(a, _)| a.to_owned()).unwrap_or_default()
    }

    /// Undo quoted-printable (soft line breaks, `=XX`) when the message uses it.
    fn decode_quoted_printable(text: &str) -> String {
        if !text.to_ascii_lowercase().contains("content-transfer-encoding: quoted-printable") {
            return text.to_owned();
        }
        let joined = text.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(byte);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test]
async fn the_mailbox_owner_reclaims_an_unverified_account_someone_registered_for_their_address() {
    let sink = SmtpSink::start(0).await;
    let app = spawn_app_with(smtp_options(&sink)).await;
    let admin = two_tenants(&app).await;
    // A squatter registers the victim's address with a password of their own (it stays unverified).
    let (status, _) = send(&app, "", Method::POST, "/api/v1/auth/register", Some(json!({ "email": "cfo@example.com", "password": "squatters password 1" }))).await;
    assert_eq!(status, 201);
    let signed_in: Value = app.login("cfo@example.com", "squatters password 1").await.json().await.unwrap();
    let squatter = signed_in["access_token"].as_str().unwrap().to_owned();
    let (_, key) = send(&app, &squatter, Method::GET, "/api/v1/auth/me", None).await;
    assert_eq!(key["user"]["email_verified"], false);
    // The real owner is invited by mail and accepts with their own password: the account is theirs.
    invite(&app, &admin, "acme", "cfo@example.com", "user").await;
    let token = sink.wait_for(2).await.into_iter().find(|m| m.text.contains("agi_")).unwrap().token("agi_");
    let (status, accepted) = accept_new(&app, &token, PASSWORD).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["email_verified"], true);
    assert_eq!(app.login("cfo@example.com", "squatters password 1").await.status(), 401, "the squatter's password is gone");
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &squatter).send().await.unwrap().status(), 401, "and so are the squatter's sessions");
    let owner = app.token("cfo@example.com").await;
    assert_eq!(send(&app, &owner, Method::GET, "/api/v1/tenants/acme", None).await.1["role"], "user");
}
