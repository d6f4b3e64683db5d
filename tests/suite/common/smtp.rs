//! A real SMTP server on 127.0.0.1 for the mail tests (mailin-embedded: the SMTP protocol
//! as a server speaks it), keeping every message it accepts.

use mailin_embedded::{response, Handler, Response, Server, SslConfig};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message (headers and body), CRLF line ends as sent.
    pub data: String,
}

impl Received {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }
}

#[derive(Clone)]
struct Keeper {
    inbox: Arc<Mutex<Vec<Received>>>,
    current: Option<Received>,
    /// The one (username, password) AUTH PLAIN accepts, when the server asks for it.
    credentials: Option<(String, String)>,
    authenticated: bool,
}

impl Handler for Keeper {
    fn auth_plain(&mut self, _authorization_id: &str, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if u == user && p == password => {
                self.authenticated = true;
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        if self.credentials.is_some() && !self.authenticated {
            return response::INVALID_CREDENTIALS;
        }
        self.current = Some(Received {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = self.current.as_mut() {
            m.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(m) = self.current.take() {
            self.inbox.lock().unwrap_or_else(|p| p.into_inner()).push(m);
        }
        response::OK
    }
}

/// A running SMTP server (it runs until the test process ends).
pub struct SmtpServer {
    pub addr: SocketAddr,
    inbox: Arc<Mutex<Vec<Received>>>,
}

impl SmtpServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for SMTP");
        Self::serve(listener)
    }

    /// A free port where nothing listens yet (to start a server on later).
    pub fn free_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("its address")
    }

    /// Starts a server on `addr`.
    pub fn start_on(addr: SocketAddr) -> SmtpServer {
        let listener = TcpListener::bind(addr).expect("the SMTP port is free");
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> SmtpServer {
        Self::serve_with(listener, SslConfig::None, None)
    }

    /// A server on 127.0.0.1 that offers STARTTLS with this certificate (PEM files: the
    /// server's certificate and key, and its CA) and takes mail only after AUTH PLAIN with
    /// `credentials`.
    pub fn start_tls(cert: &str, key: &str, ca: &str, credentials: (&str, &str)) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for SMTP");
        let tls = SslConfig::Trusted {
            cert_path: cert.into(),
            key_path: key.into(),
            chain_path: ca.into(),
        };
        Self::serve_with(
            listener,
            tls,
            Some((credentials.0.into(), credentials.1.into())),
        )
    }

    /// A server on 127.0.0.1 that speaks SMTP only inside TLS from the first byte (implicit
    /// TLS, `smtps://`, RFC 8314), with this certificate and key (PEM files). The TLS is
    /// OpenSSL's, in front of a plain server on another port.
    pub fn start_implicit_tls(cert: &str, key: &str) -> SmtpServer {
        use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
        let inner = Self::start();
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("an acceptor");
        acceptor
            .set_certificate_chain_file(cert)
            .expect("the certificate");
        acceptor
            .set_private_key_file(key, SslFiletype::PEM)
            .expect("the key");
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for SMTPS");
        let addr = listener.local_addr().expect("its address");
        let to = inner.addr;
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let acceptor = acceptor.clone();
                std::thread::spawn(move || {
                    // A client that does not trust the certificate hangs up here.
                    let Ok(tls) = acceptor.accept(tcp) else {
                        return;
                    };
                    if let Ok(plain) = std::net::TcpStream::connect(to) {
                        relay(tls, plain);
                    }
                });
            }
        });
        SmtpServer {
            addr,
            inbox: inner.inbox,
        }
    }

    fn serve_with(
        listener: TcpListener,
        tls: SslConfig,
        credentials: Option<(String, String)>,
    ) -> SmtpServer {
        let addr = listener.local_addr().expect("its address");
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let auth = credentials.is_some();
        let mut server = Server::new(Keeper {
            inbox: inbox.clone(),
            current: None,
            credentials,
            authenticated: false,
        });
        server
            .with_name("localhost")
            .with_ssl(tls)
            .expect("the TLS set-up")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        if auth {
            server.with_auth(mailin_embedded::AuthMechanism::Plain);
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { addr, inbox }
    }

    /// `COUNTERSIGN_SMTP_URL` for this server.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (bounded) until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Copies bytes both ways between a TLS client and the plain server until either side
/// closes. SMTP is a dialogue, so one thread that polls both with short timeouts will do.
fn relay(mut tls: openssl::ssl::SslStream<std::net::TcpStream>, mut plain: std::net::TcpStream) {
    use std::io::{ErrorKind, Read, Write};
    let tick = Some(Duration::from_millis(5));
    if tls.get_ref().set_read_timeout(tick).is_err() || plain.set_read_timeout(tick).is_err() {
        return;
    }
    let waiting =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if waiting(&e) => {}
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if waiting(&e) => {}
            Err(_) => return,
        }
    }
}
