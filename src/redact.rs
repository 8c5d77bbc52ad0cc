//! What must not leave the device: credentials in URLs (`user:pass@`), URL query strings
//! (tokens of signed URLs), and values whose name says they are secret. Every text fwguard
//! keeps in its history, status, outcome reports, runtime records and the support bundle
//! goes through here.

/// Names of settings or variables whose values are secrets.
const SECRET_KEYS: [&str; 6] = ["password", "passwd", "secret", "token", "credential", "psk"];

/// Whether a setting or variable called `name` holds a secret.
pub fn secret_name(name: &str) -> bool {
    let k = name.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

/// Remove what must not leave the device from a configuration text: values of keys that name
/// a secret, credentials in URLs (`user:pass@`) and URL query strings, and the paths of the
/// `[[notify]]` URLs (an ntfy topic is as good as a password).
pub fn config(config: &str) -> String {
    let mut out = String::with_capacity(config.len());
    // In a [[notify]] table, and before the first table (where `notify = [...]` is the
    // inline form of the same).
    let (mut notify, mut top) = (false, true);
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let header: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            (notify, top) = (header.starts_with("[[notify]]"), false);
        }
        let redacted = match trimmed.split_once('=') {
            Some((key, _)) if !trimmed.starts_with('#') => {
                let t = text(line);
                match key.trim() {
                    k if secret_name(k) => format!("{} = \"<removed>\"", key.trim_end()),
                    "notify" if top => format!("{} = \"<removed>\"", key.trim_end()),
                    // A URL's path (an ntfy topic, a webhook's token) and a command's
                    // arguments (an address, a header) may be secrets.
                    "url" if notify => {
                        match t
                            .find("://")
                            .and_then(|i| t[i + 3..].find('/').map(|j| i + 3 + j))
                        {
                            Some(path) => format!("{}/<removed>\"", &t[..path]),
                            None => t,
                        }
                    }
                    "command" if notify => {
                        let first = t
                            .find('"')
                            .and_then(|a| t[a + 1..].find('"').map(|b| a + b + 1));
                        match first {
                            Some(end) => format!("{}, \"<removed>\"]", &t[..=end]),
                            None => format!("{} = \"<removed>\"", key.trim_end()),
                        }
                    }
                    _ => t,
                }
            }
            _ => line.to_string(),
        };
        out.push_str(&redacted);
        out.push('\n');
    }
    out
}

/// Every URL in `line` without its credentials and query:
/// `scheme://user:pass@host/path?query` -> `scheme://<removed>@host/path?<removed>`.
pub fn text(line: &str) -> String {
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

/// Bootloader variables for the support bundle: a secret-named variable's value removed, and
/// URLs in the others without their credentials and query.
pub fn variable(name: &str, value: &str) -> String {
    if secret_name(name) {
        "<removed>".into()
    } else {
        text(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_from_a_config() {
        let text = "# a comment with password = x\n[index]\nurl = \"https://bob:hunter2@updates.example.com/i.toml?token=abc\"\napi_token = \"s3cret\"\nchannel = \"stable\"\nargv = [\"curl\", \"http://h/x?key=1\"]\n";
        let r = config(text);
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

    #[test]
    fn a_notify_url_keeps_its_host_only() {
        let text = "notify = [{ kind = \"webhook\", url = \"https://h/s3cret\" }]\n[[notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/router-s3cret\"\n[ [ notify ] ]\nkind = \"command\"\ncommand = [\"/usr/bin/mail\", \"-s\", \"s3cret@example.com\"]\n[index]\nurl = \"https://u.example.com/fw/index.toml\"\n";
        let r = config(text);
        assert!(r.contains("url = \"https://ntfy.sh/<removed>\"\n"), "{r}");
        assert!(
            r.contains("command = [\"/usr/bin/mail\", \"<removed>\"]"),
            "{r}"
        );
        assert!(r.starts_with("notify = \"<removed>\"\n"), "{r}");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(
            r.contains("url = \"https://u.example.com/fw/index.toml\""),
            "{r}"
        );
    }

    #[test]
    fn urls_in_error_texts_lose_their_credentials_and_query() {
        let e = "error sending request for url (http://u:p4ss@127.0.0.1:9/h?key=S3CRET): refused; then https://ok.example/x";
        let r = text(e);
        assert!(!r.contains("p4ss") && !r.contains("S3CRET"), "{r}");
        assert!(
            r.contains("http://<removed>@127.0.0.1:9/h?<removed>"),
            "{r}"
        );
        assert!(r.ends_with("then https://ok.example/x"), "{r}");
        // Not a URL, non-ASCII around: unchanged, no panic.
        assert_eq!(text("grüße @ ünï://"), "grüße @ ünï://");
        assert_eq!(variable("wifi_psk", "hunter2"), "<removed>");
        assert_eq!(variable("bootcmd", "run nandboot"), "run nandboot");
    }
}
