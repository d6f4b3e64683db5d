//! E-mail out (spec/mail.md): the transport named by `COUNTERSIGN_SMTP_URL` and the
//! messages Countersign sends. Who is told what is decided in `app::notify`; each mail is a
//! job (`app::mail::SendMail`), sent by the job worker through a [`Mailer`].
//!
//! Every message is `multipart/alternative` (plain text and HTML) to one recipient, with a
//! `Message-ID` of `<JOB_ID@countersign>`, so a resend of the same job after a crash is
//! recognisable as the same mail.

use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::{FileTransport, Message, SmtpTransport, Transport};
use std::time::Duration;

/// How long one SMTP exchange may take; shorter than the job lease (`workers::LEASE`).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mail goes.
pub enum Mailer {
    Smtp(SmtpTransport),
    /// One `.eml` file per mail in a folder (`file://DIR`).
    File(FileTransport, std::path::PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP transport holds the credentials: never print it.
        match self {
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::File(_, dir) => write!(f, "Mailer::File({})", dir.display()),
        }
    }
}

/// A transport URL that cannot be used; the message never holds its credentials.
#[derive(Debug, thiserror::Error)]
#[error("COUNTERSIGN_SMTP_URL {shown}: {reason}")]
pub struct MailerError {
    shown: String,
    reason: String,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (the server is down, busy, or answered 4xx).
    #[error("{0}")]
    Temporary(String),
    /// Will fail the same way again (the server answered 5xx: no such mailbox, refused).
    #[error("{0}")]
    Permanent(String),
}

impl Mailer {
    /// The transport of `url`: lettre's SMTP URL forms (`smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://host`), or `file://DIR` (created if
    /// missing). Nothing is connected yet.
    ///
    /// Errors: a URL lettre does not accept, or a folder that cannot be created.
    pub fn from_url(url: &str) -> Result<Mailer, MailerError> {
        let fail = |reason: String| MailerError {
            shown: crate::config::redact_url(url),
            reason: crate::config::scrub(&reason, &crate::config::url_secrets(url)),
        };
        if let Some(dir) = url.strip_prefix("file://") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            return Ok(Mailer::File(FileTransport::new(&dir), dir));
        }
        let transport = SmtpTransport::from_url(url)
            .map_err(|e| fail(e.to_string()))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Mailer::Smtp(transport))
    }

    /// Sends one message.
    pub fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Mailer::File(t, dir) => t.send(message).map(|_| ()).map_err(|e| {
                SendError::Temporary(format!("cannot write the mail into {}: {e}", dir.display()))
            }),
            Mailer::Smtp(t) => t.send(message).map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(format!("the mail server refused the mail: {e}"))
                } else {
                    SendError::Temporary(format!("the mail server could not take the mail: {e}"))
                }
            }),
        }
    }
}

/// One mail's content, as the notifications write it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Letter {
    pub subject: String,
    /// The plain-text part; also the source of the HTML part.
    pub text: String,
    /// Links shown as such in the HTML part, in order of appearance in `text`.
    #[serde(default)]
    pub links: Vec<String>,
}

/// A message that cannot be built (a bad address); permanent.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the mail: {0}")]
pub struct BuildError(String);

/// Builds the message of job `job_id` from `from` to `to` (one address).
pub fn build(
    job_id: impl std::fmt::Display,
    from: &str,
    to: &str,
    to_name: Option<&str>,
    letter: &Letter,
) -> Result<Message, BuildError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| BuildError(format!("From {from:?}: {e}")))?;
    let address = to
        .parse()
        .map_err(|e| BuildError(format!("To {to:?}: {e}")))?;
    let to = Mailbox::new(to_name.map(str::to_string), address);
    Message::builder()
        .message_id(Some(format!("<{job_id}@countersign>")))
        .from(from)
        .to(to)
        .subject(letter.subject.as_str())
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(letter.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(html_of(letter)),
                ),
        )
        .map_err(|e| BuildError(e.to_string()))
}

/// The HTML part: the text, escaped, one paragraph per blank-line block, each of the
/// letter's links made a link where it appears.
fn html_of(letter: &Letter) -> String {
    let mut body = String::new();
    for block in letter.text.split("\n\n") {
        let mut p = escape(block).replace('\n', "<br>\n");
        for link in &letter.links {
            let shown = escape(link);
            p = p.replace(&shown, &format!("<a href=\"{shown}\">{shown}</a>"));
        }
        body.push_str("<p>");
        body.push_str(&p);
        body.push_str("</p>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}</body></html>\n",
        escape(&letter.subject)
    )
}

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> Letter {
        Letter {
            subject: "Review needed: a reply <due soon>".into(),
            text: "Verdict: escalate\n\nOpen it: http://h/drafts/1".into(),
            links: vec!["http://h/drafts/1".into()],
        }
    }

    #[test]
    fn a_mail_is_multipart_alternative_to_one_recipient_with_the_jobs_message_id() {
        let m = build(
            "J1",
            "countersign@localhost",
            "rui@example.com",
            Some("Rui"),
            &letter(),
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <J1@countersign>"), "{raw}");
        assert!(raw.contains("To: Rui <rui@example.com>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
    }

    #[test]
    fn html_escapes_and_links() {
        let html = html_of(&letter());
        assert!(html.contains("&lt;due soon&gt;"));
        assert!(html.contains("<a href=\"http://h/drafts/1\">http://h/drafts/1</a>"));
        assert!(!html.contains("<due"));
    }

    #[test]
    fn a_bad_address_is_a_build_error() {
        assert!(build(
            "J",
            "countersign@localhost",
            "not an address",
            None,
            &letter()
        )
        .is_err());
    }

    #[test]
    fn transport_urls() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("out").display());
        assert!(matches!(Mailer::from_url(&url), Ok(Mailer::File(..))));
        assert!(matches!(
            Mailer::from_url("smtp://127.0.0.1:2525"),
            Ok(Mailer::Smtp(_))
        ));
        let err = Mailer::from_url("smtp://user:s3cret@[bad")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
