//! `fwguard diag`: the support bundle a support agent asks for first, as one `.tar.gz`:
//! versions, status, the state with its history, the configuration with secrets removed, the
//! bootloader's variables, the board checks of `doctor`, the last health round, and recent
//! logs. Read-only: it takes no lock and writes nothing but the bundle.

use super::Agent;
use std::io::Write;
use std::path::Path;

/// What the bundle holds, in order (each under `fwguard-diag/`).
pub const PARTS: [&str; 9] = [
    "versions.txt",
    "status.json",
    "state.json",
    "history.json",
    "config.toml",
    "bootloader.txt",
    "doctor.txt",
    "health.json",
    "log.txt",
];

/// Recent lines of the agent's log from the system's log: OpenWrt's `logread`, else
/// systemd's `journalctl`.
fn recent_log() -> String {
    let sources: [(&str, &[&str]); 2] = [
        ("logread", &["-e", "fwguard"]),
        ("journalctl", &["-u", "fwguard", "--no-pager", "-n", "1000"]),
    ];
    for (cmd, args) in sources {
        if let Ok(o) = std::process::Command::new(cmd).args(args).output() {
            if o.status.success() {
                return format!(
                    "$ {cmd} {}\n{}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
    }
    "no log source on this system (neither logread nor journalctl answered)\n".into()
}

fn json<T: serde::Serialize>(r: crate::error::Result<T>) -> String {
    match r {
        Ok(v) => serde_json::to_string_pretty(&v).expect("serialises") + "\n",
        Err(e) => format!(
            "{{\"error\": {}}}\n",
            serde_json::Value::String(e.to_string())
        ),
    }
}

impl Agent {
    /// The bundle's files, by name.
    pub fn diag_parts(&self) -> Vec<(&'static str, String)> {
        let status = self.status();
        let versions = format!(
            "fwguard {}\nboard {}\nrunning {}\nkernel {}\n",
            env!("CARGO_PKG_VERSION"),
            self.board.id,
            match &status {
                Ok(s) => format!(
                    "{} from slot {}",
                    s.running_version
                        .as_ref()
                        .map_or("(unknown)".into(), |v| v.to_string()),
                    s.booted_slot
                ),
                Err(e) => format!("(unknown: {e})"),
            },
            std::fs::read_to_string("/proc/version")
                .unwrap_or_default()
                .trim()
        );
        // The device's report key is a secret: not in a support bundle.
        let state = self.load().map(|mut s| {
            s.report_key = "<removed>".into();
            s
        });
        let history = state
            .as_ref()
            .map(|s| s.history.clone())
            .map_err(|e| crate::error::Error::Refused(format!("state unreadable: {e}")));
        let config = std::fs::read_to_string(&self.settings.path)
            .map(|t| crate::redact::config(&t))
            .unwrap_or_else(|e| format!("# {}: {e}\n", self.settings.path.display()));
        let bootloader = match self.board.bootloader.dump() {
            Ok(vars) => {
                let mut t = format!("{}\n", self.board.bootloader.describe());
                for (k, v) in vars {
                    let v = match k == crate::state::CARRY_VAR {
                        true => without_report_key(&v),
                        false => v,
                    };
                    t.push_str(&format!("{k}={}\n", crate::redact::variable(&k, &v)));
                }
                t
            }
            Err(e) => format!("{}\nunreadable: {e}\n", self.board.bootloader.describe()),
        };
        let board = Ok(&self.board);
        let doctor: String = crate::board::preflight::all(&self.settings, board)
            .iter()
            .map(|f| {
                format!(
                    "{} {}: {}{}\n",
                    if f.ok { "ok  " } else { "FAIL" },
                    f.check,
                    f.detail,
                    f.fix
                        .as_ref()
                        .map_or(String::new(), |x| format!(" (fix: {x})"))
                )
            })
            .collect();
        let profile = self.settings.board.profile();
        // Older state files and the system log may hold URLs with credentials: every part
        // loses them here too.
        [
            ("versions.txt", versions + &format!("profile {profile}\n")),
            ("status.json", json(status)),
            ("state.json", json(state)),
            ("history.json", json(history)),
            ("config.toml", config),
            ("bootloader.txt", bootloader),
            ("doctor.txt", doctor),
            ("health.json", json(Ok(self.last_health()))),
            ("log.txt", recent_log()),
        ]
        .into_iter()
        .map(|(name, text)| (name, crate::redact::text(&text)))
        .collect()
    }

    /// Write the bundle to `out` as a gzip-compressed tar (ustar, written here: a header
    /// block per file, its data padded to 512 bytes, two zero blocks at the end; the tar
    /// crate's writer is 10 KB of the router build for this).
    pub fn write_diag(&self, out: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(out)?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let now = crate::time::unix_now();
        for (name, text) in self.diag_parts() {
            gz.write_all(&ustar_header(
                &format!("fwguard-diag/{name}"),
                text.len() as u64,
                now,
            ))?;
            gz.write_all(text.as_bytes())?;
            gz.write_all(&[0u8; 512][..(512 - text.len() % 512) % 512])?;
        }
        gz.write_all(&[0u8; 1024])?;
        gz.flush()?;
        gz.finish()?.sync_all()
    }
}

/// The ustar header block of a regular file `name` (at most 100 bytes) of `size` bytes.
fn ustar_header(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut octal = |at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = len - 1);
        h[at..at + len].copy_from_slice(&s.as_bytes()[s.len() - len..]);
    };
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, size);
    octal(136, 12, mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A carried trial's text without the report key it carries.
fn without_report_key(text: &str) -> String {
    match crate::state::Carried::decode(text) {
        Ok(mut c) => {
            if let Some(t) = c.trial.as_mut() {
                t.report_key = "<removed>".into();
            }
            c.encode()
        }
        Err(_) => "<unreadable, removed>".into(),
    }
}
