//! E-mail (spec/mail.md): who is told what, one mail per recipient, through lettre's real
//! SMTP transport to a real SMTP server on 127.0.0.1, never losing a mail while the server
//! is down, and never carrying the customer's or the draft's text.

use crate::common::smtp::SmtpServer;
use crate::common::{decode_quoted_printable, Backend, TestApp};
use chrono::Duration;
use countersign::domain::roles::Role;

on_both_backends!(
    reviewers_hear_a_draft_waits_and_the_author_hears_the_decision,
    mail_waits_out_a_mail_server_that_is_down,
    auditors_get_the_latest_checkpoint_at_most_every_interval,
);

const CUSTOMER_TEXT: &str = "my card 4111 is blocked, I'm Jane Roe";
const DRAFT_TEXT: &str = "Sorry Jane, we're unblocking it now.";

fn subject_of(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

fn to_of(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or_default()
        .to_string()
}

fn reviewers_hear_a_draft_waits_and_the_author_hears_the_decision(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(
        b,
        &[("COUNTERSIGN_PUBLIC_URL", "https://replies.example.com/")],
    ) else {
        return;
    };
    // ana writes (she is a reviewer too, but never of her own draft); rui and eva review;
    // rex has no address; the auditor is not a reviewer.
    let agent = app.user_with_email(
        "ana",
        &[Role::Agent, Role::Reviewer],
        Some("ana@example.com"),
    );
    let rui = app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    app.user_with_email("eva", &[Role::Reviewer], Some("eva@example.com"));
    app.user("rex", &[Role::Reviewer]);
    app.user_with_email("obs", &[Role::Auditor], Some("obs@example.com"));
    let inbound = app.inbound(&agent, "77", "@jane", CUSTOMER_TEXT);
    let draft = app.draft(&agent, &inbound, DRAFT_TEXT);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        app.mail_files().is_empty(),
        "sent by the worker, not by the request"
    );
    assert_eq!(app.run_jobs(), 2);

    let mails = app.mail_files();
    let mut to: Vec<String> = mails.iter().map(|m| to_of(m)).collect();
    to.sort();
    assert_eq!(to, ["eva <eva@example.com>", "rui <rui@example.com>"]);
    let inbound_view = app
        .get(&format!("/api/v1/inbound/{inbound}"), Some(&agent))
        .body;
    for m in &mails {
        assert!(subject_of(m).starts_with("Review needed:"), "{m}");
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(m.contains("text/plain") && m.contains("text/html"), "{m}");
        assert!(m.contains("Verdict of the checks: pass"), "{m}");
        assert!(m.contains(inbound_view["due_at"].as_str().unwrap()), "{m}");
        assert!(
            m.contains(&format!("https://replies.example.com/drafts/{draft}")),
            "{m}"
        );
        for private in ["Jane", "4111", "unblocking", "@jane"] {
            assert!(!m.contains(private), "{private:?} in a mail: {m}");
        }
    }
    // One job per mail, each with its own Message-ID, recorded without its body.
    let sent = app.entries_of("mail.sent");
    assert_eq!(sent.len(), 2);
    for e in &sent {
        let job = e["data"]["job_id"].as_str().unwrap();
        assert_eq!(e["subject"], job);
        assert_eq!(e["actor"], "system");
        assert!(e["data"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Review needed:"));
        let message_id = format!("Message-ID: <{job}@countersign>");
        assert_eq!(mails.iter().filter(|m| m.contains(&message_id)).count(), 1);
        assert_eq!(
            e["data"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["job_id", "subject", "to"]
        );
    }

    // The first of two approvals would say nothing; one approval decides this draft.
    let r = app.review(&rui, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    app.run_jobs();
    let approved: Vec<String> = app
        .mail_files()
        .into_iter()
        .filter(|m| subject_of(m).starts_with("Approved:"))
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(to_of(&approved[0]), "ana <ana@example.com>");
    assert!(
        approved[0].contains("rui approved your reply"),
        "{}",
        approved[0]
    ); // The link's path opens a page on the service (no data on it, only where to go).
    let page = app.get(&format!("/drafts/{draft}"), None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains(&format!("/api/v1/drafts/{draft}")));
    assert!(!page.text.contains(DRAFT_TEXT) && !page.text.contains("Jane"));
    assert_eq!(app.get("/drafts/not-an-id", None).status, 404);
    assert_eq!(app.get(&format!("/inbound/{inbound}"), None).status, 200);
}

fn mail_waits_out_a_mail_server_that_is_down(b: Backend) {
    let port = SmtpServer::free_port();
    let url = format!("smtp://{port}");
    let Some(app) = TestApp::spawn_without_workers(b, &[("COUNTERSIGN_SMTP_URL", &url)]) else {
        return;
    };
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    let inbound = app.inbound(&agent, "78", "@jane", CUSTOMER_TEXT);
    let draft = app.draft(&agent, &inbound, DRAFT_TEXT);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(
        r.status, 200,
        "a dead mail server never fails a request: {}",
        r.text
    );

    // Nothing listens: the attempt fails and is kept for later.
    assert_eq!(app.run_jobs(), 1);
    assert!(app.entries_of("mail.sent").is_empty());
    assert!(app.entries_of("mail.failed").is_empty(), "not given up");
    let mut conn = app.ctx.db.conn().unwrap();
    let jobs = countersign::db::jobs::of_kind(&mut conn, "mail").unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, countersign::domain::jobs::JobState::Pending);
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("mail server"),
        "{jobs:?}"
    );
    drop(conn);
    app.advance(Duration::minutes(2));
    assert_eq!(app.run_jobs(), 1, "still down");

    // The server comes up: the next attempt delivers the mail, once.
    let server = SmtpServer::start_on(port);
    assert_eq!(app.run_jobs(), 0, "the retry is not due yet");
    app.advance(Duration::minutes(10));
    assert_eq!(app.run_jobs(), 1);
    let got = server.wait_for(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["rui@example.com"]);
    assert_eq!(got[0].from, "countersign@localhost");
    let job = &app.entries_of("mail.sent")[0]["data"]["job_id"];
    assert_eq!(
        got[0].header("Message-ID").as_deref(),
        Some(format!("<{}@countersign>", job.as_str().unwrap()).as_str())
    );
    let body = decode_quoted_printable(&got[0].data);
    assert!(body.contains(&format!("/drafts/{draft}")), "{body}");
    app.advance(Duration::hours(2));
    assert_eq!(app.run_jobs(), 0);
    assert_eq!(server.received().len(), 1, "sent once");
}

fn auditors_get_the_latest_checkpoint_at_most_every_interval(b: Backend) {
    let server = SmtpServer::start();
    let Some(app) = TestApp::spawn_without_workers(
        b,
        &[
            ("COUNTERSIGN_SMTP_URL", &server.url()),
            ("COUNTERSIGN_AUDITOR_EMAILS", "regulator@example.org"),
            ("COUNTERSIGN_CHECKPOINT_MAIL_MINUTES", "60"),
        ],
    ) else {
        return;
    };
    let auditor = app.user_with_email("obs", &[Role::Auditor], Some("obs@example.com"));
    let mail_if_due = || {
        let mut conn = app.ctx.db.conn().unwrap();
        countersign::app::checkpoints::mail_checkpoint_if_due(&app.ctx, &mut conn).unwrap()
    };
    // The log has grown since the checkpoint made at start: make one, then mail it.
    app.ctx
        .log
        .checkpoint_head(&mut app.ctx.db.conn().unwrap())
        .unwrap();
    let before = app.audit_size();
    assert_eq!(mail_if_due(), 2);
    app.run_jobs();
    let got = server.wait_for(2);
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["obs@example.com", "regulator@example.org"]);
    let note = app.get("/api/v1/audit/checkpoint", Some(&auditor)).text;
    for m in &got {
        assert!(m.header("Subject").unwrap().starts_with("Audit checkpoint"));
        let text = decode_quoted_printable(&m.data).replace("\r\n", "\n");
        assert!(
            text.contains(&note),
            "the note verbatim: {text}\n---\n{note}"
        );
    }
    assert_eq!(
        app.audit_size(),
        before,
        "checkpoint mails are not recorded"
    );
    assert!(app.entries_of("mail.sent").is_empty());

    // Not again within the hour, nor for the same checkpoint after it.
    assert_eq!(mail_if_due(), 0);
    app.advance(Duration::minutes(61));
    assert_eq!(mail_if_due(), 0, "the log did not grow");
    app.user("new", &[Role::Agent]);
    app.ctx
        .log
        .checkpoint_head(&mut app.ctx.db.conn().unwrap())
        .unwrap();
    assert_eq!(mail_if_due(), 2);
    assert_eq!(mail_if_due(), 0);
    app.run_jobs();
    assert_eq!(server.wait_for(4).len(), 4);
}

/// A test CA and a certificate for `localhost` signed by it, as PEM files in `dir`:
/// (server certificate, server key, CA certificate).
fn test_certificates(dir: &std::path::Path) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Countersign test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    (
        write("smtp.pem", cert.pem()),
        write("smtp.key", key.serialize_pem()),
        write("ca.pem", ca.pem()),
    )
}

/// STARTTLS with credentials, the server's certificate trusted through the platform's
/// usual mechanism (`SSL_CERT_FILE`), never through a setting that turns checking off; and
/// the same server refused when its CA is not trusted (the mail waits, nothing is sent in
/// clear).
#[test]
fn mail_goes_over_starttls_with_credentials_to_a_trusted_server_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = test_certificates(dir.path());
    let server = SmtpServer::start_tls(&cert, &key, &ca, ("mailer", "s3cret!"));
    let url = format!(
        "smtp://mailer:s3cret%21@localhost:{}?tls=required",
        server.addr.port()
    );
    let run = |name: &str, trust: &str| {
        serve_and_submit(
            dir.path(),
            name,
            &[
                ("COUNTERSIGN_SMTP_URL", url.as_str()),
                ("SSL_CERT_FILE", trust),
            ],
        )
    };

    // Trusted: delivered, after STARTTLS and AUTH (the server offers AUTH only over TLS).
    let (home, serve) = run("trusted", &ca);
    let got = server.wait_for(1);
    assert_eq!(got.len(), 1, "the mail arrived");
    assert_eq!(got[0].to, ["rui@example.com"]);
    drop(serve);
    let log = std::fs::read_to_string(home.join("serve.log")).unwrap();
    assert!(
        !log.contains("s3cret"),
        "the SMTP password reached the log: {log}"
    );

    // Not trusted (another CA file): nothing is sent, the job waits with the reason.
    let (other, _, _) = test_certificates(&dir.path().join("trusted"));
    let (home, serve) = run("untrusted", &other);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(server.received().len(), 1, "nothing more arrived");
    drop(serve);
    let job = the_mail_job(&home);
    assert_eq!(
        job.state,
        countersign::domain::jobs::JobState::Pending,
        "kept for a retry"
    );
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("certificate") || error.contains("handshake"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
}

/// Starts `serve` in `root/name` with `envs`, with an agent and a reviewer who has an
/// address, and submits one draft, which enqueues one "Review needed" mail.
fn serve_and_submit(
    root: &std::path::Path,
    name: &str,
    envs: &[(&str, &str)],
) -> (std::path::PathBuf, crate::cli::Server) {
    let home = root.join(name);
    std::fs::create_dir_all(&home).unwrap();
    for args in [
        &["ana", "--role", "agent"][..],
        &["rui", "--role", "reviewer", "--email", "rui@example.com"][..],
    ] {
        assert!(crate::cli::add_user_with(&home, args, envs)
            .status
            .success());
    }
    let policies = crate::cli::repo("policies");
    let serve = crate::cli::Server::start_with(&home, &policies, envs, "serve.log");
    let token = serve.login("ana");
    let (status, m) = serve.post(
        "/api/v1/inbound",
        &token,
        &serde_json::json!({"channel": "x", "external_id": name, "author": {"handle": "@c"}, "text": "hi"}),
    );
    assert_eq!(status, 201, "{m}");
    let (status, d) = serve.post(
        "/api/v1/drafts",
        &token,
        &serde_json::json!({"inbound_id": m["id"], "text": "Hello!"}),
    );
    assert_eq!(status, 201, "{d}");
    let (status, s) = serve.post(
        &format!("/api/v1/drafts/{}/submit", d["id"].as_str().unwrap()),
        &token,
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{s}");
    (home, serve)
}

/// The one mail job of a stopped run in `home`.
fn the_mail_job(home: &std::path::Path) -> countersign::db::jobs::JobRow {
    let db = countersign::db::Db::connect(
        &format!("sqlite://{}", home.join("countersign.db").display()),
        1,
    )
    .unwrap();
    let mut jobs = countersign::db::jobs::of_kind(&mut db.conn().unwrap(), "mail").unwrap();
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

/// `smtps://`: TLS from the first byte (RFC 8314), the certificate checked against the
/// trusted CAs; a server whose CA is not trusted gets nothing.
#[test]
fn mail_goes_over_implicit_tls_to_a_trusted_server_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = test_certificates(dir.path());
    let server = SmtpServer::start_implicit_tls(&cert, &key);
    let url = format!("smtps://localhost:{}", server.addr.port());
    let run = |name: &str, trust: &str| {
        serve_and_submit(
            dir.path(),
            name,
            &[
                ("COUNTERSIGN_SMTP_URL", url.as_str()),
                ("SSL_CERT_FILE", trust),
            ],
        )
    };
    let (_home, serve) = run("trusted", &ca);
    let got = server.wait_for(1);
    assert_eq!(got.len(), 1, "the mail arrived over TLS");
    assert_eq!(got[0].to, ["rui@example.com"]);
    assert!(got[0]
        .header("Subject")
        .is_some_and(|s| s.starts_with("Review needed:")));
    drop(serve);

    let (other, _, _) = test_certificates(&dir.path().join("trusted"));
    let (home, serve) = run("untrusted", &other);
    std::thread::sleep(std::time::Duration::from_secs(3));
    drop(serve);
    assert_eq!(server.received().len(), 1, "nothing more arrived");
    let job = the_mail_job(&home);
    assert_eq!(
        job.state,
        countersign::domain::jobs::JobState::Pending,
        "kept for a retry"
    );
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("certificate") || error.contains("handshake"),
        "{error}"
    );
}

/// A mail enqueued by one run of the service is sent by the next: it waits in the database,
/// not in memory (here the first run has no worker at all, as if it died at once).
#[test]
fn a_waiting_mail_survives_a_restart() {
    let server = SmtpServer::start();
    let url = server.url();
    let Some(app) =
        TestApp::spawn_without_workers(Backend::Sqlite, &[("COUNTERSIGN_SMTP_URL", &url)])
    else {
        return;
    };
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    let inbound = app.inbound(&agent, "90", "@jane", CUSTOMER_TEXT);
    let draft = app.draft(&agent, &inbound, DRAFT_TEXT);
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    let db = app.stop();
    assert!(server.received().is_empty());
    let again = TestApp::start(db, &[("COUNTERSIGN_SMTP_URL", &url)]);
    let got = server.wait_for(1);
    assert_eq!(got.len(), 1, "sent by the next run's worker");
    assert_eq!(got[0].to, ["rui@example.com"]);
    // The worker records the mail just after the server took it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while again.entries_of("mail.sent").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(again.entries_of("mail.sent").len(), 1);
}
