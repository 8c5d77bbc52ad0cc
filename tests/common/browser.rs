//! Headless Chromium (Debian's chromium, which tests/run.sh installs), for pages served on
//! loopback: the DOM it builds, and a screenshot.

#![allow(dead_code)]

use std::path::Path;

/// Chromium headless with `args`, on `url`.
async fn chromium(url: &str, args: Vec<String>) -> std::process::Output {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut all = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--window-size=1000,700".into(),
        ];
        all.extend(args);
        all.push(url);
        std::process::Command::new("chromium")
            .args(&all)
            .output()
            .expect(
                "chromium (Debian's package chromium) must be installed: tests/run.sh installs it",
            )
    })
    .await
    .unwrap()
}

/// The DOM Chromium built from `url`.
pub async fn dom(url: &str) -> String {
    let o = chromium(url, vec!["--dump-dom".into()]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A screenshot of `url` into `png` (a PNG of some size, checked).
pub async fn screenshot(url: &str, png: &Path) {
    let _ = std::fs::remove_file(png);
    let o = chromium(url, vec![format!("--screenshot={}", png.display())]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(png).expect("the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 5000,
        "{} bytes",
        bytes.len()
    );
}
