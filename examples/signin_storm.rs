//! A sign-in storm against a running server, measuring what it costs the server: resident
//! memory before, at its peak during, and after the storm (from /proc/PID/status), and the
//! latency a signed-in user sees meanwhile. `scripts/load-signin` prepares the users and the
//! server and runs this; see docs/performance.md.
//!
//! ```text
//! signin_storm ADDR PID [CONCURRENCY] [SECONDS] [keep-alive]
//! ```
//! ADDR is the server's `127.0.0.1:PORT`; PID its process. Users `storm0`…`storm9` and
//! `steady` must exist with the password `a long enough password`; `storm0`…`storm4` get
//! locked first (five wrong passwords each). Then CONCURRENCY clients (default 200), each on
//! its own loopback source address 127.0.0.2, 127.0.0.3, …, sign in over and over for
//! SECONDS (default 10), each on a new connection (or on one kept-alive connection with
//! `keep-alive`), mixing right and wrong passwords, locked and unlocked users, and
//! unknown names, while `steady` lists the inbound queue every 20 ms with its token, once on
//! a new connection each time and once on a kept-alive one. The storm clients are tasks on
//! one thread, so the generator leaves the server the CPU a storm from elsewhere would.
//! Every loop is bounded in count and time; traffic goes to loopback only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough password";
/// No client sends more than this many requests, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: usize = 10_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One request on a new connection from `source`; returns (status, body).
fn request(
    server: SocketAddr,
    source: Ipv4Addr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// One request on a kept-alive connection (opened if `conn` is empty, dropped on error);
/// returns the status.
fn request_kept_alive(
    conn: &mut Option<TcpStream>,
    server: SocketAddr,
    source: Ipv4Addr,
    (method, path): (&str, &str),
    headers: &str,
    body: &str,
) -> u16 {
    let attempt = |conn: &mut Option<TcpStream>| -> std::io::Result<u16> {
        if conn.is_none() {
            use socket2::{Domain, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
            socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
            let s: TcpStream = socket.into();
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            *conn = Some(s);
        }
        let stream = conn.as_mut().expect("connected above");
        // One write: `write!` sends the pieces one by one, and Nagle's algorithm with the
        // server's delayed ACK would then hold the last piece back 40 ms.
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {server}\r\n{headers}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        // Read the head, then exactly Content-Length bytes of body.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body)?;
        Ok(head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0))
    };
    attempt(conn).unwrap_or_else(|_| {
        *conn = None;
        0
    })
}

fn login(server: SocketAddr, source: Ipv4Addr, user: &str, password: &str) -> (u16, String) {
    let body = format!(r#"{{"username": "{user}", "password": "{password}"}}"#);
    request(server, source, "POST", "/api/v1/login", "", &body).unwrap_or((0, String::new()))
}

type Tally = (std::collections::BTreeMap<u16, usize>, Vec<Duration>);

/// One storm client, from its own loopback address: signs in again and again until
/// `deadline`, on a new connection each time or on one kept-alive connection.
async fn storm_client(server: SocketAddr, c: usize, deadline: Instant, keep_alive: bool) -> Tally {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let source = Ipv4Addr::new(127, 0, (2 + c / 250) as u8, (2 + c % 250) as u8);
    let connect = || async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
        Ok::<_, std::io::Error>(BufReader::new(socket.connect(server).await?))
    };
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut latencies = Vec::new();
    let mut conn = None;
    let mut n = 0usize;
    while Instant::now() < deadline && n < MAX_REQUESTS_PER_CLIENT {
        // A mix: unlocked users with right and wrong passwords, locked users with the right
        // one, and names nobody has.
        let (user, password) = match (c + n) % 4 {
            0 => (format!("storm{}", 5 + (c + n) % 5), PASSWORD.to_string()),
            1 => (format!("storm{}", 5 + (c + n) % 5), format!("wrong {n}")),
            2 => (format!("storm{}", (c + n) % 5), PASSWORD.to_string()),
            _ => (format!("nobody{c}"), format!("guess {n}")),
        };
        n += 1;
        let body = format!(r#"{{"username": "{user}", "password": "{password}"}}"#);
        let close = if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let request = format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: {server}\r\n{close}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        let exchange = async {
            if conn.is_none() {
                conn = Some(connect().await?);
            }
            let stream = conn.as_mut().expect("connected above");
            stream.get_mut().write_all(request.as_bytes()).await?;
            let mut status = 0u16;
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(code) = l.strip_prefix("http/1.1 ") {
                    status = code.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
                } else if let Some(v) = l.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut rest = vec![0u8; length];
            stream.read_exact(&mut rest).await?;
            Ok::<_, std::io::Error>(status)
        };
        let status = match exchange.await {
            Ok(s) => s,
            Err(_) => {
                conn = None; // closed by the server: open another next time
                0
            }
        };
        if !keep_alive {
            conn = None;
        }
        latencies.push(t.elapsed());
        *statuses.entry(status).or_default() += 1;
    }
    (statuses, latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: signin_storm ADDR PID [CONCURRENCY] [SECONDS]");
        std::process::exit(2);
    }
    let server: SocketAddr = args[1].parse().expect("ADDR is 127.0.0.1:PORT");
    assert!(server.ip().is_loopback(), "loopback targets only");
    let pid: u32 = args[2].parse().expect("PID");
    let concurrency: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let seconds: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10);
    // `keep-alive`: each storm client keeps one connection; else a new one per sign-in.
    let keep_alive = args.get(5).is_some_and(|a| a == "keep-alive");
    let local = Ipv4Addr::LOCALHOST;
    // Before anything: the fresh start's memory.
    let idle = rss_kib(pid);

    // Lock storm0..storm4, each from an address the storm does not use (127.1.0.u).
    for u in 0..5u8 {
        for i in 0..5 {
            let from = Ipv4Addr::new(127, 1, 0, u + 1);
            login(server, from, &format!("storm{u}"), &format!("wrong {i}"));
        }
    }
    let (status, body) = login(server, local, "steady", PASSWORD);
    assert_eq!(status, 200, "steady signs in: {body}");
    let token = body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a token")
        .to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(idle));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(now);
                drop(p);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let steady = {
        let stop = stop.clone();
        let token = token.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let auth = format!("Authorization: Bearer {token}\r\n");
            while !stop.load(Ordering::Relaxed) && latencies.len() < MAX_REQUESTS_PER_CLIENT {
                let t = Instant::now();
                let (status, _) = request(
                    server,
                    local,
                    "GET",
                    "/api/v1/inbound?state=open",
                    &auth,
                    "",
                )
                .unwrap_or((0, String::new()));
                latencies.push(t.elapsed());
                *statuses.entry(status).or_default() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (latencies, statuses)
        })
    };

    // The same user's client keeping its connection open, as browsers and API clients do.
    let steady_kept = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let auth = format!("Authorization: Bearer {token}\r\n");
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) && latencies.len() < MAX_REQUESTS_PER_CLIENT {
                let t = Instant::now();
                let status = request_kept_alive(
                    &mut conn,
                    server,
                    local,
                    ("GET", "/api/v1/inbound?state=open"),
                    &auth,
                    "",
                );
                latencies.push(t.elapsed());
                *statuses.entry(status).or_default() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (latencies, statuses)
        })
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    // The storm: every client a task on one thread, so the generator takes one core's share
    // of the CPU at most, as a storm from elsewhere would, however many clients it runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let results = runtime.block_on(async move {
        let tasks: Vec<_> = (0..concurrency)
            .map(|c| tokio::spawn(storm_client(server, c, deadline, keep_alive)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client"));
        }
        all
    });
    let mut storm_statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut storm_latencies = Vec::new();
    for (s, l) in results {
        for (k, v) in s {
            *storm_statuses.entry(k).or_default() += v;
        }
        storm_latencies.extend(l);
    }
    let storm_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut steady_latencies, steady_statuses) = steady.join().expect("steady");
    let (mut kept_latencies, kept_statuses) = steady_kept.join().expect("steady, kept alive");
    sampler.join().expect("sampler");
    let peak = *peak.lock().unwrap();
    let right_after = rss_kib(pid);
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib(pid);

    steady_latencies.sort();
    kept_latencies.sort();
    storm_latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "storm: {concurrency} clients ({}) for {:.1} s, {} sign-ins, answers {:?}",
        if keep_alive {
            "kept-alive connections"
        } else {
            "a new connection a sign-in"
        },
        storm_time.as_secs_f64(),
        storm_latencies.len(),
        storm_statuses
    );
    println!(
        "storm latency ms: p50 {:.1}, p99 {:.1}, max {:.1}",
        ms(percentile(&storm_latencies, 0.5)),
        ms(percentile(&storm_latencies, 0.99)),
        ms(percentile(&storm_latencies, 1.0))
    );
    println!(
        "signed-in user, kept-alive connection: {} requests {:?}, ms p50 {:.1}, p99 {:.1}, max {:.1}",
        kept_latencies.len(),
        kept_statuses,
        ms(percentile(&kept_latencies, 0.5)),
        ms(percentile(&kept_latencies, 0.99)),
        ms(percentile(&kept_latencies, 1.0))
    );
    println!(
        "signed-in user, a new connection a request: {} requests {:?}, ms p50 {:.1}, p99 {:.1}, max {:.1}",
        steady_latencies.len(),
        steady_statuses,
        ms(percentile(&steady_latencies, 0.5)),
        ms(percentile(&steady_latencies, 0.99)),
        ms(percentile(&steady_latencies, 1.0))
    );
    println!(
        "rss MB: fresh start {:.1}, peak {:.1}, right after {:.1}, 10 s after {:.1}",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        right_after as f64 / 1024.0,
        after as f64 / 1024.0
    );
}
