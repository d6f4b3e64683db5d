//! A sign-in storm against a running server, measuring what it costs the server: resident
//! memory before, at its peak during, and after the storm (from /proc/PID/status), and the
//! latency a signed-in user sees meanwhile. `scripts/load-signin` prepares the users and the
//! server and runs this; see docs/performance.md.
//!
//! ```text
//! signin_storm ADDR PID [CONCURRENCY] [SECONDS]
//! ```
//! ADDR is the server's `127.0.0.1:PORT`; PID its process. Users `storm0`…`storm9` and
//! `steady` must exist with the password `a long enough password`; `storm0`…`storm4` get
//! locked first (five wrong passwords each). Then CONCURRENCY clients (default 200), each on
//! its own loopback source address 127.0.0.2, 127.0.0.3, …, sign in over and over for
//! SECONDS (default 10), mixing right and wrong passwords, locked and unlocked users, and
//! unknown names, while `steady` lists the inbound queue every 20 ms with its token. Every
//! loop is bounded in count and time; traffic goes to loopback only.

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
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn login(server: SocketAddr, source: Ipv4Addr, user: &str, password: &str) -> (u16, String) {
    let body = format!(r#"{{"username": "{user}", "password": "{password}"}}"#);
    request(server, source, "POST", "/api/v1/login", "", &body).unwrap_or((0, String::new()))
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

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..concurrency)
        .map(|c| {
            std::thread::spawn(move || {
                let source = Ipv4Addr::new(127, 0, (2 + c / 250) as u8, (2 + c % 250) as u8);
                let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while Instant::now() < deadline && n < MAX_REQUESTS_PER_CLIENT {
                    // A mix: unlocked users with right and wrong passwords, locked users with
                    // the right one, and names nobody has.
                    let (user, password) = match (c + n) % 4 {
                        0 => (format!("storm{}", 5 + (c + n) % 5), PASSWORD.to_string()),
                        1 => (format!("storm{}", 5 + (c + n) % 5), format!("wrong {n}")),
                        2 => (format!("storm{}", (c + n) % 5), PASSWORD.to_string()),
                        _ => (format!("nobody{c}"), format!("guess {n}")),
                    };
                    let t = Instant::now();
                    let (status, _) = login(server, source, &user, &password);
                    latencies.push(t.elapsed());
                    *statuses.entry(status).or_default() += 1;
                    n += 1;
                }
                (statuses, latencies)
            })
        })
        .collect();
    let mut storm_statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut storm_latencies = Vec::new();
    for c in clients {
        let (s, l) = c.join().expect("client");
        for (k, v) in s {
            *storm_statuses.entry(k).or_default() += v;
        }
        storm_latencies.extend(l);
    }
    let storm_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut steady_latencies, steady_statuses) = steady.join().expect("steady");
    sampler.join().expect("sampler");
    let peak = *peak.lock().unwrap();
    let right_after = rss_kib(pid);
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib(pid);

    steady_latencies.sort();
    storm_latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "storm: {concurrency} clients for {:.1} s, {} sign-ins, answers {:?}",
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
        "signed-in user meanwhile: {} requests {:?}, ms p50 {:.1}, p99 {:.1}, max {:.1}",
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
