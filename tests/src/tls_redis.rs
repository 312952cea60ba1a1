//! A `redis-server` that speaks only TLS, with a private CA the test makes (openssl CLI): the
//! server certificate names 127.0.0.1, and clients must show a certificate of the same CA.

use std::path::Path;
use std::process::Command;

use crate::redis_nodes::{base_args, start_node};
use crate::{Proc, TempDir};

/// A TLS-only Redis (`--port 0 --tls-port P --tls-auth-clients yes`) and the files of its CA.
#[derive(Debug)]
pub struct TlsRedis {
    /// The server process.
    pub proc: Proc,
    port: u16,
    dir: TempDir,
}

impl TlsRedis {
    /// Makes a CA, a server and a client certificate, and starts the server.
    pub fn start() -> Self {
        let dir = TempDir::new("tls-redis");
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
        make_signed(
            d,
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        make_signed(d, "client", "ca", "extendedKeyUsage=clientAuth");
        let tls = cli_tls(d);
        let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
        let (proc, port) = start_node("redis-tls", "redis-server", &tls, |port| {
            let mut args = base_args(0, d);
            args.extend(
                [
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &path(d, "server.pem"),
                    "--tls-key-file",
                    &path(d, "server.key"),
                    "--tls-ca-cert-file",
                    &path(d, "ca.pem"),
                    "--tls-auth-clients",
                    "yes",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
            args
        });
        Self { proc, port, dir }
    }

    /// `rediss://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> String {
        path(self.dir.path(), "ca.pem")
    }

    /// A CA that signed nothing the server shows: verification must fail.
    pub fn other_ca_file(&self) -> String {
        path(self.dir.path(), "other-ca.pem")
    }

    /// The environment a binary needs to reach this server: URL, CA, client certificate.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_URL", self.url()),
            ("REDIS_TLS_CA_FILE", self.ca_file()),
            ("REDIS_TLS_CERT_FILE", path(self.dir.path(), "client.pem")),
            ("REDIS_TLS_KEY_FILE", path(self.dir.path(), "client.key")),
        ]
    }
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).to_string_lossy().into_owned()
}

/// redis-cli's options to reach the server with the client certificate.
fn cli_tls(d: &Path) -> Vec<String> {
    vec![
        "--tls".into(),
        "--cacert".into(),
        path(d, "ca.pem"),
        "--cert".into(),
        path(d, "client.pem"),
        "--key".into(),
        path(d, "client.key"),
    ]
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (ops/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed P-256 CA: `<name>.pem`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    let (pem, key, subj) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("/CN=switchyard test {name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
        ],
    );
}

/// A P-256 certificate `<name>.pem` / `<name>.key` signed by CA `ca`, with `extensions`.
fn make_signed(dir: &Path, name: &str, ca: &str, extensions: &str) {
    let (pem, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&ext), extensions).expect("write the extensions file");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}
