//! Pure-Rust floor for `bench/run.py`: N round trips of a 16-byte message over
//! 127.0.0.1 with TCP_NODELAY on both ends, the same ping-pong as the Python floor
//! (`bench/workers/{client,server}.py --kind tcp`) with no interpreter in the way.
//!
//! ```text
//! rpyc-bench-floor [--n N] [--warmup W] [--max-seconds S] [--in-process]
//! rpyc-bench-floor --serve [--max-seconds S]
//! ```
//!
//! By default the echo server is a second process (this program run with `--serve`,
//! which prints `READY <port> <pid>` and exits when the connection or its stdin closes),
//! as in the Python floor; `--in-process` runs it as a thread of this process instead.
//! The client prints one line `BENCH-RESULT {"n": .., "total_s": .., "us_per_op": ..}`
//! (the workers' result format) and exits 0; on an error, a message on stderr and exit 1.
//! Both processes exit by themselves after `--max-seconds` (default 300) whatever happens.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const MSG: &[u8; 16] = b"0123456789abcdef";
const USAGE: &str =
    "usage: rpyc-bench-floor [--n N] [--warmup W] [--max-seconds S] [--in-process]\n       \
                     rpyc-bench-floor --serve [--max-seconds S]";

struct Args {
    n: u64,
    warmup: u64,
    max_seconds: u64,
    serve: bool,
    in_process: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        n: 20_000,
        warmup: 2_000,
        max_seconds: 300,
        serve: false,
        in_process: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--n" => &mut args.n,
            "--warmup" => &mut args.warmup,
            "--max-seconds" => &mut args.max_seconds,
            "--serve" => {
                args.serve = true;
                continue;
            }
            "--in-process" => {
                args.in_process = true;
                continue;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = value
            .parse()
            .map_err(|_| format!("{flag}: not a non-negative integer: {value:?}"))?;
    }
    if args.n == 0 {
        return Err("--n must be at least 1".into());
    }
    Ok(args)
}

/// Accept one connection and echo 16-byte messages until the client closes it.
fn serve_one(listener: TcpListener) -> io::Result<()> {
    let (mut sock, _) = listener.accept()?;
    sock.set_nodelay(true)?;
    let mut buf = [0u8; MSG.len()];
    loop {
        match sock.read_exact(&mut buf) {
            Ok(()) => sock.write_all(&buf)?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// `--serve`: the echo server process.
fn serve() -> io::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "READY {} {}",
        listener.local_addr()?.port(),
        std::process::id()
    )?;
    out.flush()?;
    drop(out);
    // The parent holds our stdin: its end closing (the parent died) ends us too.
    thread::spawn(|| {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        std::process::exit(0);
    });
    serve_one(listener)
}

/// Start `--serve` as a child process; its address once it is listening.
fn spawn_server(max_seconds: u64) -> io::Result<(Child, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", "--max-seconds", &max_seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let port = line
        .strip_prefix("READY ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok());
    match port {
        Some(port) => Ok((child, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other(format!(
                "the server process did not start (it printed {line:?})"
            )))
        }
    }
}

fn round_trip(sock: &mut TcpStream, buf: &mut [u8; MSG.len()]) -> io::Result<()> {
    sock.write_all(MSG)?;
    sock.read_exact(buf)
}

/// Connect, check the echo, warm up, time `n` round trips.
fn ping_pong(addr: SocketAddr, args: &Args) -> io::Result<Duration> {
    let mut sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    let mut buf = [0u8; MSG.len()];
    round_trip(&mut sock, &mut buf)?;
    if &buf != MSG {
        return Err(io::Error::other("the echo server sent back other bytes"));
    }
    for _ in 0..args.warmup {
        round_trip(&mut sock, &mut buf)?;
    }
    let t0 = Instant::now();
    for _ in 0..args.n {
        round_trip(&mut sock, &mut buf)?;
    }
    Ok(t0.elapsed())
}

fn run(args: &Args) -> io::Result<Duration> {
    if args.in_process {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let server = thread::Builder::new()
            .name("echo".into())
            .spawn(move || serve_one(listener))?;
        let elapsed = ping_pong(addr, args)?; // the socket is closed: the server returns
        server
            .join()
            .map_err(|_| io::Error::other("echo thread panicked"))??;
        return Ok(elapsed);
    }
    let (mut child, addr) = spawn_server(args.max_seconds)?;
    let result = ping_pong(addr, args);
    drop(child.stdin.take()); // EOF on its stdin: the server exits even if still connected
    let status = child.wait()?;
    let elapsed = result?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the server process failed: {status}"
        )));
    }
    Ok(elapsed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let limit = Duration::from_secs(args.max_seconds);
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!(
            "rpyc-bench-floor exceeded max lifetime of {}s, exiting",
            limit.as_secs()
        );
        std::process::exit(3);
    });
    if args.serve {
        return match serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rpyc-bench-floor --serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(elapsed) => {
            let total = elapsed.as_secs_f64();
            println!(
                "BENCH-RESULT {{\"n\": {}, \"total_s\": {:.9}, \"us_per_op\": {:.4}, \"in_process\": {}}}",
                args.n,
                total,
                total / args.n as f64 * 1e6,
                args.in_process
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rpyc-bench-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
