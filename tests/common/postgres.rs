//! A real PostgreSQL server for a test (Debian's postgresql, which tests/run.sh installs): a
//! cluster of its own in a temporary directory, run as the `postgres` user (the server
//! refuses root), listening on 127.0.0.1 on a free port only, stopped when dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `postgresql://fleet@127.0.0.1:PORT/postgres`
    pub url: String,
}

/// Run `argv` as the `postgres` user.
fn as_postgres(argv: &[&str]) {
    let o = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(argv)
        .output()
        .expect("runuser (the tests run as root, as CI does)");
    assert!(
        o.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (Debian's postgresql) must be installed: tests/run.sh installs it")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins
            .pop()
            .expect("a PostgreSQL server in /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("the postgres user (made by Debian's postgresql)");
        nix::unistd::chown(dir.path(), Some(pg.uid), Some(pg.gid)).unwrap();
        let data = dir.path().join("data");
        let exe = |name: &str| bin.join(name).display().to_string();
        as_postgres(&[
            &exe("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "fleet",
            "--no-sync",
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = format!(
            "-h 127.0.0.1 -p {port} -k {} -c fsync=off",
            dir.path().display()
        );
        as_postgres(&[
            &exe("pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            dir.path().join("log").to_str().unwrap(),
            "-w",
            "start",
        ]);
        Postgres {
            url: format!("postgresql://fleet@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
