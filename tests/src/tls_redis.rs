//! A `redis-server` that speaks only TLS, with a private CA the test makes ([`TlsFiles`]): the
//! server certificate names 127.0.0.1, and clients must show a certificate of the same CA.

use crate::redis_nodes::{base_args, start_node};
use crate::tls_files::TlsFiles;
use crate::{Proc, TempDir};

/// A TLS-only Redis (`--port 0 --tls-port P --tls-auth-clients yes`) and the files of its CA.
#[derive(Debug)]
pub struct TlsRedis {
    /// The server process.
    pub proc: Proc,
    port: u16,
    tls: TlsFiles,
    _dir: TempDir,
}

impl TlsRedis {
    /// Makes a CA, a server and a client certificate, and starts the server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`TlsRedis::start`] with `extra` server options (e.g. `--stream-node-max-entries 16`).
    pub fn start_with(extra: &[&str]) -> Self {
        let tls = TlsFiles::make();
        let dir = TempDir::new("tls-redis");
        let cli = tls.cli_args();
        let cli: Vec<&str> = cli.iter().map(String::as_str).collect();
        let (proc, port) = start_node("redis-tls", "redis-server", &cli, |port| {
            let mut args = base_args(0, dir.path());
            args.extend(tls.server_args(port).into_iter().skip(2));
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args
        });
        Self {
            proc,
            port,
            tls,
            _dir: dir,
        }
    }

    /// `rediss://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> String {
        self.tls.path("ca.pem")
    }

    /// A CA that signed nothing the server shows: verification must fail.
    pub fn other_ca_file(&self) -> String {
        self.tls.path("other-ca.pem")
    }

    /// The environment a binary needs to reach this server: URL, CA, client certificate.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("REDIS_URL", self.url())];
        env.extend(self.tls.client_env());
        env
    }
}
