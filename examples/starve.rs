//! The slow-client attack on a server's pool, and a real user beside it.
//!
//! C connections from N loopback addresses (127.1.0.1 to 127.1.0.N) each send two bytes and
//! then nothing, and reconnect the moment the server cuts them. Meanwhile, once a second, a
//! real user (from 127.2.0.1) logs in, runs STAT, RETR 1 and QUIT; each probe's time from
//! connect to `+OK Bye` is printed, and a last line `RESULT probes=P failed=F max_ms=M
//! attackers_cut=K` sums it up. The exit status is 1 if a probe failed.
//!
//! ```text
//! cargo run --release --example starve -- -c 500 -n 100 -t 30 \
//!     -u bench -p benchpass 127.0.0.1:1110
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = getopts::Options::new();
    opts.optopt("c", "connections", "slow connections (default 500)", "C");
    opts.optopt(
        "n",
        "addresses",
        "source addresses, at most 250 (default 100)",
        "N",
    );
    opts.optopt("t", "time", "seconds to run (default 30)", "T");
    opts.optopt("u", "user", "the real user's name (default bench)", "USER");
    opts.optopt(
        "p",
        "password",
        "the real user's password (default benchpass)",
        "PASS",
    );
    opts.optflag("h", "help", "print this help");
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => return usage(&opts, &e.to_string()),
    };
    if m.opt_present("help") {
        print!("{}", opts.usage("Usage: starve [OPTIONS] HOST:PORT"));
        return ExitCode::SUCCESS;
    }
    let number = |name: &str, default: u64| -> Result<u64, String> {
        m.opt_str(name).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| format!("--{name}: {s:?} is not a number"))
        })
    };
    let parsed = (|| -> Result<_, String> {
        let [target] = &m.free[..] else {
            return Err("expected one HOST:PORT".into());
        };
        let target: SocketAddrV4 = target
            .parse()
            .map_err(|_| format!("{target}: not an IPv4 HOST:PORT"))?;
        let addresses = number("addresses", 100)?.clamp(1, 250) as u8;
        Ok((
            target,
            number("connections", 500)? as usize,
            addresses,
            Duration::from_secs(number("time", 30)?),
        ))
    })();
    let (target, connections, addresses, time) = match parsed {
        Ok(p) => p,
        Err(e) => return usage(&opts, &e),
    };
    let user = m.opt_str("user").unwrap_or_else(|| "bench".into());
    let password = m.opt_str("password").unwrap_or_else(|| "benchpass".into());

    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..connections)
        .map(|i| {
            let from = Ipv4Addr::new(127, 1, 0, 1 + (i % usize::from(addresses)) as u8);
            let (stop, cut) = (stop.clone(), cut.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || attacker(from, target, &stop, &cut))
                .expect("attacker thread")
        })
        .collect();
    let started = Instant::now();
    let (mut probes, mut failed, mut worst) = (0, 0, Duration::ZERO);
    // The first probe once every attacker has had time to connect.
    thread::sleep(Duration::from_secs(1));
    while started.elapsed() < time {
        let round = Instant::now();
        let t = Instant::now();
        let result = probe(target, &user, &password);
        let took = t.elapsed();
        probes += 1;
        worst = worst.max(took);
        match result {
            Ok(()) if took < Duration::from_secs(1) => println!("probe {probes}: {took:.2?}"),
            Ok(()) => {
                failed += 1;
                println!("probe {probes}: {took:.2?} (over 1 s)");
            }
            Err(e) => {
                failed += 1;
                println!("probe {probes}: failed after {took:.2?}: {e}");
            }
        }
        thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
    }
    stop.store(true, Ordering::SeqCst);
    // The attackers wait in reads; they notice the flag when cut, or are left to the exit.
    drop(attackers);
    println!(
        "RESULT probes={probes} failed={failed} max_ms={:.1} attackers_cut={}",
        worst.as_secs_f64() * 1000.0,
        cut.load(Ordering::SeqCst)
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(opts: &getopts::Options, error: &str) -> ExitCode {
    eprintln!(
        "starve: {error}\n{}",
        opts.usage("Usage: starve [OPTIONS] HOST:PORT")
    );
    ExitCode::from(2)
}

/// One slow client: connects, sends two bytes, waits to be cut, and again.
fn attacker(from: Ipv4Addr, to: SocketAddrV4, stop: &AtomicBool, cut: &AtomicU64) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut stream) = connect_from(from, to) else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = stream.write_all(b"US");
        let mut sink = [0u8; 512];
        while let Ok(n) = stream.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// A real user's session: login, STAT, RETR 1, QUIT, each reply checked.
fn probe(to: SocketAddrV4, user: &str, password: &str) -> io::Result<()> {
    let stream = connect_from(Ipv4Addr::new(127, 2, 0, 1), to)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut expect_ok = |reader: &mut BufReader<TcpStream>, what: &str| -> io::Result<()> {
        line.clear();
        reader.read_line(&mut line)?;
        if line.starts_with("+OK") {
            Ok(())
        } else {
            Err(io::Error::other(format!("{what}: {}", line.trim_end())))
        }
    };
    expect_ok(&mut reader, "greeting")?;
    for (command, what) in [
        (format!("USER {user}\r\n"), "USER"),
        (format!("PASS {password}\r\n"), "PASS"),
        ("STAT\r\n".to_owned(), "STAT"),
        ("RETR 1\r\n".to_owned(), "RETR"),
    ] {
        writer.write_all(command.as_bytes())?;
        expect_ok(&mut reader, what)?;
    }
    // The message, to its terminating line.
    let mut body = Vec::new();
    loop {
        body.clear();
        if reader.read_until(b'\n', &mut body)? == 0 {
            return Err(io::Error::other("RETR: cut short"));
        }
        if body == b".\r\n" {
            break;
        }
    }
    writer.write_all(b"QUIT\r\n")?;
    expect_ok(&mut reader, "QUIT")
}

/// A TCP connection to `to` from the local address `from` (std cannot bind before connect).
fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<TcpStream> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns; the stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let (local, remote) = (sockaddr(SocketAddrV4::new(from, 0)), sockaddr(to));
    // SAFETY: a valid descriptor and a sockaddr_in of the length given.
    if unsafe { libc::bind(stream.as_raw_fd(), std::ptr::from_ref(&local).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::connect(stream.as_raw_fd(), std::ptr::from_ref(&remote).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}
