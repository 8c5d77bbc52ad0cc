//! `fwguard diag`: the support bundle a support agent asks for first, as one `.tar.gz`:
//! versions, status, the state with its history, the configuration with secrets removed, the
//! bootloader's variables, the board checks of `doctor`, the last health round, and recent
//! logs. Read-only: it takes no lock and writes nothing but the bundle.

use super::Agent;
use crate::config::BoardSettings;
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

/// Remove what must not leave the device from a configuration text: values of keys that name
/// a secret, credentials in URLs (`user:pass@`) and URL query strings.
pub fn redact_config(text: &str) -> String {
    const SECRET_KEYS: [&str; 5] = ["password", "passwd", "secret", "token", "credential"];
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let redacted = match trimmed.split_once('=') {
            Some((key, _)) if !trimmed.starts_with('#') => {
                let k = key.trim().to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| k.contains(s)) {
                    format!("{} = \"<removed>\"", key.trim_end())
                } else {
                    redact_urls(line)
                }
            }
            _ => line.to_string(),
        };
        out.push_str(&redacted);
        out.push('\n');
    }
    out
}

/// `scheme://user:pass@host/path?query` -> `scheme://<removed>@host/path?<removed>`.
fn redact_urls(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(rest.len());
        let (url, tail) = rest.split_at(end);
        let host_end = url.find('/').unwrap_or(url.len());
        let url = match url[..host_end].rfind('@') {
            Some(i) => format!("<removed>@{}", &url[i + 1..]),
            None => url.to_string(),
        };
        let url = match url.split_once('?') {
            Some((base, _)) => format!("{base}?<removed>"),
            None => url,
        };
        out.push_str(&url);
        rest = tail;
    }
    out.push_str(rest);
    out
}

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
        let state = self.load();
        let history = state
            .as_ref()
            .map(|s| s.history.clone())
            .map_err(|e| crate::error::Error::Refused(format!("state unreadable: {e}")));
        let config = std::fs::read_to_string(&self.settings.path)
            .map(|t| redact_config(&t))
            .unwrap_or_else(|e| format!("# {}: {e}\n", self.settings.path.display()));
        let bootloader = match self.board.bootloader.dump() {
            Ok(vars) => {
                let mut t = format!("{}\n", self.board.bootloader.describe());
                for (k, v) in vars {
                    t.push_str(&format!("{k}={v}\n"));
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
        let profile = match &self.settings.board {
            BoardSettings::Sim { .. } => "sim",
            BoardSettings::UBoot { .. } => "uboot",
            BoardSettings::Linksys(_) => "linksys",
            BoardSettings::Grub(_) => "grub",
            BoardSettings::Script(_) => "script",
        };
        vec![
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
    }

    /// Write the bundle to `out` as a gzip-compressed tar.
    pub fn write_diag(&self, out: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(out)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let now = crate::index::unix_now();
        for (name, text) in self.diag_parts() {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(now);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, format!("fwguard-diag/{name}"), text.as_bytes())?;
        }
        let mut gz = tar.into_inner()?;
        gz.flush()?;
        gz.finish()?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed() {
        let text = "# a comment with password = x\n[index]\nurl = \"https://bob:hunter2@updates.example.com/i.toml?token=abc\"\napi_token = \"s3cret\"\nchannel = \"stable\"\nargv = [\"curl\", \"http://h/x?key=1\"]\n";
        let r = redact_config(text);
        assert!(
            !r.contains("hunter2")
                && !r.contains("abc")
                && !r.contains("s3cret")
                && !r.contains("key=1"),
            "{r}"
        );
        assert!(
            r.contains("url = \"https://<removed>@updates.example.com/i.toml?<removed>\""),
            "{r}"
        );
        assert!(r.contains("api_token = \"<removed>\""), "{r}");
        assert!(r.contains("channel = \"stable\"") && r.contains("# a comment with password = x"));
        assert!(r.contains("\"http://h/x?<removed>\""), "{r}");
    }
}
