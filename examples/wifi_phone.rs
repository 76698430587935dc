//! What a phone on the dashcam's Wi-Fi does, for the emulated appliance's
//! tests (hil-tests/ota/scenarios.py runs it inside the guest, in the
//! network namespace of a simulated station): resolve a name over
//! multicast DNS as a phone's resolver does (a query from port 5353 to
//! 224.0.0.251, the answer taken from the group), scan TCP and UDP ports,
//! carry a TCP connection over stdin/stdout (so that the host's own TLS
//! client can verify the dashcam's certificate through the station), and
//! listen on a port (a host beyond the dashcam, which must stay out of
//! reach). Only std: it runs on the image as built.
//!
//! ```text
//! wifi_phone mdns NAME [SECONDS]      -> the IPv4 address NAME answers with
//! wifi_phone tcp-scan HOST FIRST LAST -> "open P" for each port that accepts
//! wifi_phone udp HOST PORT...         -> "P replied|refused|silent"
//! wifi_phone pipe HOST PORT           -> stdin to the socket, the socket to stdout
//! wifi_phone listen PORT              -> TCP and UDP: answers "beyond"
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_PORT: u16 = 5353;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["mdns", name] => mdns(name, 60),
        ["mdns", name, secs] => number(secs).and_then(|s| mdns(name, s)),
        ["tcp-scan", host, first, last] => {
            number(first).and_then(|f| number(last).and_then(|l| tcp_scan(host, f, l)))
        }
        ["udp", host, ports @ ..] if !ports.is_empty() => udp(host, ports),
        ["pipe", host, port] => number(port).and_then(|p| pipe(host, p)),
        ["listen", port] => number(port).and_then(listen),
        _ => Err(
            "usage: wifi_phone mdns NAME [SECONDS] | tcp-scan HOST FIRST LAST | \
                  udp HOST PORT... | pipe HOST PORT | listen PORT"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wifi_phone: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn number<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn host(s: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| format!("not an IPv4 address: {s}"))
}

/// A query for NAME's A record, as the DNS wire format has it (RFC 1035
/// 4.1; mDNS's ID is 0, RFC 6762 18.1).
fn query(name: &str) -> Result<Vec<u8>> {
    let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("not a DNS name: {name}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(q)
}

/// Reads a (possibly compressed) name at `at`; returns it lowercased and
/// the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let to = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            at = to;
            continue;
        }
        let label = msg.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    None
}

/// The first A record for `name` in a response, if any.
fn answer(msg: &[u8], name: &str) -> Option<Ipv4Addr> {
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return None; // not a response
    }
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(msg, at)?.1 + 4;
    }
    for _ in 0..records {
        let (owner, next) = read_name(msg, at)?;
        let head = msg.get(next..next + 10)?;
        let (kind, len) = (
            u16::from_be_bytes([head[0], head[1]]),
            u16::from_be_bytes([head[8], head[9]]) as usize,
        );
        let data = msg.get(next + 10..next + 10 + len)?;
        if kind == 1 && len == 4 && owner == name.trim_end_matches('.').to_ascii_lowercase() {
            return Some(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at = next + 10 + len;
    }
    None
}

fn mdns(name: &str, secs: u64) -> Result<()> {
    let q = query(name)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, MDNS_PORT))
        .map_err(|e| format!("bind 5353: {e}"))?;
    sock.join_multicast_v4(&MDNS_GROUP, &Ipv4Addr::UNSPECIFIED)
        .map_err(|e| format!("join 224.0.0.251: {e}"))?;
    sock.set_multicast_ttl_v4(255).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut buf = [0u8; 9000];
    while start.elapsed() < Duration::from_secs(secs) {
        sock.send_to(&q, (MDNS_GROUP, MDNS_PORT))
            .map_err(|e| format!("send: {e}"))?;
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(1) {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Some(ip) = answer(&buf[..n], name) {
                        println!("{ip} (from {from})");
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
    }
    Err(format!("no answer for {name} in {secs} s"))
}

/// Connects to every port in FIRST..=LAST from 32 threads; prints the
/// ones that accept. A port that neither accepts nor refuses within 5 s
/// counts as not answering (what the test asks).
fn tcp_scan(host_s: &str, first: u16, last: u16) -> Result<()> {
    let ip = host(host_s)?;
    let next = Arc::new(AtomicU32::new(u32::from(first)));
    let open = Arc::new(Mutex::new(Vec::new()));
    let counts = Arc::new(Mutex::new((0u32, 0u32))); // refused, silent
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (next, open, counts) = (next.clone(), open.clone(), counts.clone());
            std::thread::spawn(move || {
                loop {
                    let port = next.fetch_add(1, Ordering::Relaxed);
                    if port > u32::from(last) {
                        break;
                    }
                    let addr = SocketAddr::from((ip, port as u16));
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                        Ok(_) => open.lock().map(|mut o| o.push(port)).unwrap_or(()),
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                            counts.lock().map(|mut c| c.0 += 1).unwrap_or(())
                        }
                        Err(_) => counts.lock().map(|mut c| c.1 += 1).unwrap_or(()),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| "a scanning thread panicked".to_string())?;
    }
    let mut open = open.lock().map_err(|_| "poisoned")?.clone();
    open.sort_unstable();
    let (refused, silent) = *counts.lock().map_err(|_| "poisoned")?;
    for p in &open {
        println!("open {p}");
    }
    println!(
        "scanned {} ports: {} open, {refused} refused, {silent} silent",
        u32::from(last) - u32::from(first) + 1,
        open.len()
    );
    Ok(())
}

/// One datagram to each port (an mDNS query to 5353, a DHCP-sized
/// nothing elsewhere): whether anything came back, the kernel said the
/// port is closed (ICMP), or nothing came in 5 s.
fn udp(host_s: &str, ports: &[&str]) -> Result<()> {
    let ip = host(host_s)?;
    for p in ports {
        let port: u16 = number(p)?;
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        sock.connect((ip, port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let payload = if port == MDNS_PORT {
            query("blackbox.local")?
        } else {
            vec![0u8; 8]
        };
        let mut buf = [0u8; 2048];
        let said = match sock.send(&payload).and_then(|_| sock.recv(&mut buf)) {
            Ok(_) => "replied",
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => "refused",
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                "silent"
            }
            Err(e) => return Err(format!("port {port}: {e}")),
        };
        println!("{port} {said}");
    }
    Ok(())
}

fn pipe(host_s: &str, port: u16) -> Result<()> {
    let ip = host(host_s)?;
    let sock = TcpStream::connect((ip, port)).map_err(|e| format!("connect: {e}"))?;
    let mut down = sock.try_clone().map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || {
        let mut out = io::stdout().lock();
        let mut buf = [0u8; 16384];
        while let Ok(n) = down.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut up = &sock;
    let mut input = io::stdin().lock();
    let mut buf = [0u8; 16384];
    loop {
        match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if up.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = sock.shutdown(Shutdown::Write);
    reader
        .join()
        .map_err(|_| "the reading thread panicked".to_string())
}

/// TCP and UDP on every address: a TCP connection is told "beyond", a
/// datagram is answered with one.
fn listen(port: u16) -> Result<()> {
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| e.to_string())?;
    let u = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = u.recv_from(&mut buf) {
            let _ = u.send_to(b"beyond\n", from);
        }
    });
    for conn in l.incoming().flatten() {
        let mut conn = conn;
        let _ = conn.write_all(b"beyond\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_read_back() {
        let mut msg = query("blackbox.local").unwrap();
        msg[2] = 0x84; // a response, authoritative
        msg[7] = 1; // one answer
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 73, 1]);
        assert_eq!(
            answer(&msg, "BlackBox.local"),
            Some(Ipv4Addr::new(192, 168, 73, 1))
        );
        assert_eq!(answer(&msg, "other.local"), None);
        assert_eq!(answer(&msg[..20], "blackbox.local"), None);
    }
}
