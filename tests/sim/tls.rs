//! https: the index, the images and an https health check over TLS, trusting exactly the CA
//! bundle the configuration names (no roots are compiled in). The certificates are made with
//! the real `openssl` and served by Python's TLS web server on 127.0.0.1.

use super::common;

use common::tools::tool;
use fwguard::agent::Agent;
use fwguard::config::Settings;
use fwguard::error::{Error, EXIT_CONFIG, EXIT_NETWORK};
use fwguard::index::select::Choice;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Run the real `openssl` with these space-separated arguments (no argument has a space).
fn openssl(args: &str) {
    tool("openssl", &args.split_whitespace().collect::<Vec<_>>());
}

/// A CA and a certificate for 127.0.0.1 signed by it; returns (ca.pem, cert.pem, key.pem).
fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout {d}/ca.key -out {d}/ca.pem -days 2 -subj /CN={name}-test-CA \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    ));
    openssl(&format!(
        "req {ec} -keyout {d}/key.pem -out {d}/req.pem -subj /CN=127.0.0.1"
    ));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&format!(
        "x509 -req -in {d}/req.pem -CA {d}/ca.pem -CAkey {d}/ca.key -CAcreateserial \
         -out {d}/cert.pem -days 2 -extfile {d}/ext.cnf"
    ));
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Python's web server over TLS for `root` on 127.0.0.1; killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(root: &Path, cert: &Path, key: &Path) -> TlsServer {
        let script = r#"
import http.server, ssl, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k): super().__init__(*a, directory=sys.argv[1], **k)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(root)
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (tests/run.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The world's config with the index (and the vendor-site health check) over https, and
/// `ca_bundle` as the trusted CAs.
fn https_config(t: &common::TestWorld, port: u16, ca_bundle: &Path) -> PathBuf {
    let http = t.world.index_url();
    let https = format!("https://127.0.0.1:{port}/index.toml");
    let text = std::fs::read_to_string(&t.cfg)
        .unwrap()
        .replace(&http, &https)
        .replace(
            "[agent]\n",
            &format!("[agent]\nca_bundle = \"{}\"\n", ca_bundle.display()),
        );
    assert!(text.contains(&https) && text.contains("ca_bundle"));
    let p = t.cfg.with_file_name("https.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn agent(cfg: &Path) -> Result<Agent, Error> {
    Agent::from_settings(Settings::load(cfg)?)
}

#[tokio::test]
async fn the_index_and_image_come_over_tls_trusting_only_the_configured_bundle() {
    let mut t = common::world("auto").await;
    t.world.publish(&["1.1"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(&tmp.path().join("vendor-ca"), "vendor");
    let (other_ca, _, _) = make_ca(&tmp.path().join("other-ca"), "other");
    let server = TlsServer::start(&t.world.www, &cert, &key);

    // Trusting another CA only: the server's certificate is refused.
    let e = agent(&https_config(&t, server.port, &other_ca))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let chain = fwguard::health::error_chain(&e);
    assert_eq!(e.exit_code(), EXIT_NETWORK, "{chain}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");

    // No bundle at the configured path: refused naming the file, before connecting.
    let missing = tmp.path().join("no-such-bundle.crt");
    let e = agent(&https_config(&t, server.port, &missing))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("no CA bundle at") && msg.contains("no-such-bundle.crt"),
        "{msg}"
    );

    // A file that is not a PEM bundle: a configuration error naming it.
    let junk = tmp.path().join("junk.crt");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = agent(&https_config(&t, server.port, &junk))
        .err()
        .expect("a broken bundle is refused");
    assert_eq!(e.exit_code(), EXIT_CONFIG);
    assert!(e.to_string().contains("junk.crt"), "{e}");
    let empty = tmp.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let e = agent(&https_config(&t, server.port, &empty)).err().unwrap();
    assert!(e.to_string().contains("holds no certificate"), "{e}");

    // The vendor's CA: the index verifies, 1.1 downloads over TLS, boots and commits (its
    // health checks include the vendor site over https).
    let cfg = https_config(&t, server.port, &ca);
    let a = agent(&cfg).unwrap();
    match a.check().await.unwrap().choice {
        Choice::Install(r) => assert_eq!(r.version.as_str(), "1.1"),
        other => panic!("{other:?}"),
    }
    t.cfg = cfg;
    let (boot, _) = t.update_and_judge().await;
    assert_eq!(boot.version.as_str(), "1.1");
    assert!(common::history_has(&t.state(), "committed", "1.1"));
    let health = t
        .agent()
        .last_health()
        .expect("a health round was recorded");
    let site = health
        .report
        .results
        .iter()
        .find(|c| c.name == "vendor-site")
        .unwrap();
    assert!(site.passed, "{site:?}");
    assert!(t.agent().settings.index.url.starts_with("https://"));
}

#[tokio::test]
async fn an_https_health_check_without_a_bundle_fails_naming_the_file() {
    let t = common::world("off").await;
    let tmp = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_ca(&tmp.path().join("ca"), "vendor");
    let server = TlsServer::start(&t.world.www, &cert, &key);
    let cfg = https_config(&t, server.port, &tmp.path().join("absent.crt"));
    let a = agent(&cfg).unwrap();
    let _ = a.health_now().await;
    let r = a.last_health().unwrap();
    let site = r
        .report
        .results
        .iter()
        .find(|c| c.name == "vendor-site")
        .unwrap();
    assert!(!site.passed);
    assert!(site.detail.contains("absent.crt"), "{}", site.detail);
}
