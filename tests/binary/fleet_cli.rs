//! `fwguard-fleet` as a vendor starts it (feature `fleet`): the README's command with its
//! defaults, the dashboard served, and a missing halt key or a bad flag named.

use std::io::BufRead;
use std::process::{Command, Stdio};

#[test]
fn the_service_starts_serves_its_dashboard_and_names_a_missing_key() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let tool = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_fwguard-index"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    tool(&["keygen", "-s", "halt.sec", "-p", "halt.pub"]);
    std::fs::create_dir(d.join("www")).unwrap();
    let fleet = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fwguard-fleet"));
        c.current_dir(d);
        c
    };
    let o = fleet()
        .args(["--index-dir", "www", "--halt-key", "nope.sec"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nope.sec"), "{err}");
    assert!(
        !d.join("fleet.sqlite").exists(),
        "a refused start created the database"
    );
    // Counting only devices known before their wave is on unless turned off in so many words.
    let o = fleet()
        .args(["--index-dir", "www", "--halt-key", "halt.sec"])
        .args(["--known-before-wave", "maybe"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--known-before-wave") && err.contains("maybe"),
        "{err}"
    );
    assert!(!d.join("fleet.sqlite").exists());

    let mut child = fleet()
        .args([
            "--index-dir",
            "www",
            "--halt-key",
            "halt.sec",
            "--listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("fwguard-fleet: listening on ")
                .map(str::to_string)
        })
        .expect("the service says where it listens");
    let page = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        c.read_to_string(&mut page).unwrap();
        page
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("No reports yet."), "{page}");
    assert!(page.contains("0 device(s) known"), "{page}");
    assert!(d.join("fleet.sqlite").exists());
}
