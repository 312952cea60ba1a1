//! A private CA a test makes with the openssl CLI, and what servers and clients need of it: a
//! server certificate naming 127.0.0.1, a client certificate of the same CA, and a second CA
//! that signed nothing (for verification that must fail).

use std::path::Path;
use std::process::Command;

use crate::TempDir;

/// The CA's files in a directory of their own, removed on drop.
#[derive(Debug)]
pub struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    /// Makes a CA, another CA, a server and a client certificate.
    pub fn make() -> Self {
        let dir = TempDir::new("tls-ca");
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
        make_signed(
            d,
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth",
        );
        make_signed(d, "client", "ca", "extendedKeyUsage=clientAuth");
        Self { dir }
    }

    /// `<dir>/<file>` as text.
    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }

    /// The options of a TLS-only `redis-server` / `redis-sentinel` on `port` that requires
    /// client certificates of this CA (its plain port closed).
    pub fn server_args(&self, port: u16) -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &self.path("server.pem"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// The same as config-file lines (a sentinel reads its options from a file).
    pub fn config_lines(&self, port: u16) -> String {
        self.server_args(port)
            .chunks(2)
            .map(|kv| format!("{} {}\n", kv[0].trim_start_matches('-'), kv[1]))
            .collect()
    }

    /// redis-cli's options to reach such a server with the client certificate.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.path("ca.pem"),
            "--cert".into(),
            self.path("client.pem"),
            "--key".into(),
            self.path("client.key"),
        ]
    }

    /// The variables a binary needs besides `REDIS_URL`: CA, client certificate and key.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REDIS_TLS_CA_FILE", self.path("ca.pem")),
            ("REDIS_TLS_CERT_FILE", self.path("client.pem")),
            ("REDIS_TLS_KEY_FILE", self.path("client.key")),
        ]
    }
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

/// A P-256 key and `req` arguments shared by the CA and the signed certificates.
const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A self-signed P-256 CA: `<name>.pem`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    let (pem, key, subj) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("/CN=switchyard test {name}"),
    );
    let mut args = vec!["req", "-x509", "-new", "-nodes"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
    openssl(dir, &args);
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
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &args);
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

/// Helpers of fixtures that run over TLS only when given a [`TlsFiles`].
pub mod maybe {
    use super::TlsFiles;

    /// `redis-cli` on `port`, with the client certificate when `tls` is given.
    pub fn cli(tls: Option<&TlsFiles>, port: u16, args: &[&str]) -> Result<String, String> {
        let opts = tls.map(TlsFiles::cli_args).unwrap_or_default();
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        crate::redis_nodes::cli(port, &opts, args)
    }

    /// `redis://127.0.0.1:P,…` of `ports` (`rediss://` when `tls` is given).
    pub fn urls<'a>(tls: Option<&TlsFiles>, ports: impl IntoIterator<Item = &'a u16>) -> String {
        let scheme = if tls.is_some() { "rediss" } else { "redis" };
        ports
            .into_iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The variables a binary needs besides `REDIS_URL`: none without TLS.
    pub fn client_env(tls: Option<&TlsFiles>) -> Vec<(&'static str, String)> {
        tls.map(TlsFiles::client_env).unwrap_or_default()
    }
}
