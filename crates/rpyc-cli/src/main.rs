//! `rpyc-cli`: talk to an RPyC server without Python.
//!
//! ```text
//! rpyc-cli ADDRESS ping                  a round trip; prints the time it took
//! rpyc-cli ADDRESS names                 the names the server's root exposes
//! rpyc-cli ADDRESS call METHOD [ARG...]  root.METHOD(ARG, ...); ARGs are Python literals
//! rpyc-cli ADDRESS eval EXPRESSION       classic servers: evaluate an expression
//! rpyc-cli ADDRESS exec STATEMENTS       classic servers: run statements
//! ```
//! ADDRESS is `host:port`, or the path of a Unix socket (containing a `/`). Options before
//! the command: `--timeout SECONDS` (default 30). Literals: `None`, `True`, `False`, ints,
//! floats, `'text'` or `"text"`, `b'bytes'`, tuples `(1, 2)` and lists `[1, 2]` (sent as
//! tuples); anything else is sent as a string. Exit status: 0 success, 1 the server raised,
//! 2 usage, 3 connection or protocol error.

mod literal;

use rpyc::{Config, Connection, Error, NetRef, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: rpyc-cli [--timeout SECONDS] ADDRESS COMMAND [ARGS...]
  ADDRESS   host:port, or a Unix socket path
  ping                    one round trip
  names                   the names the root exposes
  call METHOD [ARG...]    root.METHOD(*ARGS), ARGS as Python literals
  eval EXPRESSION         evaluate on a classic server
  exec STATEMENTS         execute on a classic server";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = Some(Duration::from_secs(30));
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        match flag.as_str() {
            "--timeout" if !args.is_empty() => {
                let v = args.remove(0);
                match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => timeout = Some(Duration::from_secs_f64(s)),
                    Ok(0.0) => timeout = None,
                    _ => return usage(&format!("--timeout needs seconds, got {v:?}")),
                }
            }
            "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown option {other}")),
        }
    }
    if args.len() < 2 {
        return usage("an ADDRESS and a COMMAND are needed");
    }
    let (address, command, rest) = (args[0].clone(), args[1].clone(), &args[2..]);
    // Arguments are checked before connecting: a typo is a usage error wherever the server is.
    let mut call_args = Vec::new();
    if command == "call" {
        for a in rest.iter().skip(1) {
            match literal::parse(a) {
                Ok(v) => call_args.push(v),
                Err(why) => return usage(&format!("argument {a:?}: {why}")),
            }
        }
    }
    let config = Config {
        sync_request_timeout: timeout,
        ..Config::default()
    };
    let conn = match connect(&address, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rpyc-cli: {e}");
            return ExitCode::from(3);
        }
    };
    let result = match command.as_str() {
        "ping" if rest.is_empty() => ping(&conn),
        "names" if rest.is_empty() => names(&conn),
        "call" if !rest.is_empty() => call(&conn, &rest[0], call_args),
        "eval" if rest.len() == 1 => eval(&conn, &rest[0]),
        "exec" if rest.len() == 1 => exec(&conn, &rest[0]),
        "ping" | "names" | "call" | "eval" | "exec" => {
            return usage(&format!("wrong number of arguments for {command}"))
        }
        other => return usage(&format!("unknown command {other:?}")),
    };
    conn.close();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => usage(&why),
        Err(Failure::Rpc(Error::Remote(e))) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(Failure::Rpc(e)) => {
            eprintln!("rpyc-cli: {e}");
            ExitCode::from(3)
        }
    }
}

enum Failure {
    /// A command that cannot run on this server.
    Usage(String),
    Rpc(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Rpc(e)
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("rpyc-cli: {why}\n{USAGE}");
    ExitCode::from(2)
}

fn connect(address: &str, config: Config) -> rpyc::Result<Connection> {
    #[cfg(unix)]
    if address.contains('/') {
        return Connection::connect_unix_with(address, config);
    }
    Connection::connect_with(address, config)
}

fn ping(conn: &Connection) -> Result<(), Failure> {
    let t0 = Instant::now();
    let back = conn.ping("rpyc-cli")?;
    let dt = t0.elapsed();
    if back != Value::str("rpyc-cli") {
        return Err(Failure::Rpc(Error::Conversion(format!(
            "the server echoed {back:?} instead of the ping data"
        ))));
    }
    println!("pong in {:.3} ms", dt.as_secs_f64() * 1e3);
    Ok(())
}

fn names(conn: &Connection) -> Result<(), Failure> {
    let root = conn.root()?;
    let all = root.dir()?;
    let exposed: Vec<&str> = all
        .iter()
        .filter_map(|n| n.strip_prefix("exposed_"))
        .collect();
    let shown: Vec<&str> = if exposed.is_empty() {
        all.iter()
            .map(String::as_str)
            .filter(|n| !n.starts_with('_'))
            .collect()
    } else {
        exposed
    };
    println!("{} ({})", root.type_name(), shown.len());
    for n in shown {
        println!("  {n}");
    }
    Ok(())
}

fn call(conn: &Connection, method: &str, args: Vec<Value>) -> Result<(), Failure> {
    let root = conn.root()?;
    let result: Value = root.call_method(method, args)?;
    print_value(result)
}

fn eval(conn: &Connection, expr: &str) -> Result<(), Failure> {
    let c = classic(conn)?;
    let v: Value = c.call_method("eval", (expr,))?;
    print_value(v)
}

fn exec(conn: &Connection, code: &str) -> Result<(), Failure> {
    let c = classic(conn)?;
    c.call_method::<Value>("execute", (code,))?;
    Ok(())
}

/// The root of a classic server (one with `eval` and `execute`).
fn classic(conn: &Connection) -> Result<NetRef, Failure> {
    let root = conn.root()?;
    let names = root.dir()?;
    if !names.iter().any(|n| n == "eval" || n == "exposed_eval") {
        return Err(Failure::Usage(format!(
            "the server's root ({}) has no eval: eval and exec need a classic server \
             (SlaveService / rpyc_classic)",
            root.type_name()
        )));
    }
    Ok(root)
}

fn print_value(v: Value) -> Result<(), Failure> {
    match v {
        Value::Remote(r) => println!("{}", r.repr()?),
        Value::None => {}
        other => println!("{}", literal::repr(&other)),
    }
    Ok(())
}
