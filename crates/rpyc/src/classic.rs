//! Classic mode: a Python `SlaveService` / `ClassicServer` peer (`rpyc_classic.py`) gives
//! full access to its interpreter: import modules, evaluate expressions, run statements.
//! Only connect to classic servers you trust with everything; they trust you likewise.

use crate::config::Config;
use crate::conn::Connection;
use crate::error::Result;
use crate::netref::NetRef;
use crate::value::FromValue;
use std::net::ToSocketAddrs;

/// A connection to a classic-mode server.
///
/// ```no_run
/// let c = rpyc::classic::connect("127.0.0.1:18812")?;
/// let pid: i64 = c.module("os")?.call_method("getpid", ())?;
/// let four: i64 = c.eval("2 + 2")?;
/// # Ok::<(), rpyc::Error>(())
/// ```
pub struct Classic {
    conn: Connection,
    root: NetRef,
}

/// Connect to a classic server over TCP (upstream's default port is 18812).
pub fn connect(addr: impl ToSocketAddrs) -> Result<Classic> {
    Classic::new(Connection::connect(addr)?)
}

/// Connect to a classic server with these settings.
pub fn connect_with(addr: impl ToSocketAddrs, config: Config) -> Result<Classic> {
    Classic::new(Connection::connect_with(addr, config)?)
}

impl Classic {
    /// Classic helpers over an open connection.
    pub fn new(conn: Connection) -> Result<Classic> {
        let root = conn.root()?;
        Ok(Classic { conn, root })
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A module of the server's interpreter, imported if needed (`conn.modules.os`).
    pub fn module(&self, name: &str) -> Result<NetRef> {
        self.root.call_method("getmodule", (name,))
    }

    /// The server's `builtins` module.
    pub fn builtins(&self) -> Result<NetRef> {
        self.module("builtins")
    }

    /// Evaluate a Python expression in the server's namespace (`conn.eval`).
    pub fn eval<R: FromValue>(&self, expr: &str) -> Result<R> {
        self.root.call_method("eval", (expr,))
    }

    /// Execute Python statements in the server's namespace (`conn.execute`).
    pub fn execute(&self, code: &str) -> Result<()> {
        self.root
            .call_method::<crate::Value>("execute", (code,))
            .map(drop)
    }

    /// The server's namespace dict (where `eval` and `execute` run).
    pub fn namespace(&self) -> Result<NetRef> {
        self.root.getattr("namespace")
    }
}
