//! `fwguard diag`: the support bundle opens with the real `tar tzf`, holds every part, and
//! the configuration in it has its secrets removed.

use super::common;

use common::world;
use std::process::Command;

#[tokio::test]
async fn the_support_bundle_holds_every_part_without_secrets() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    t.agent()
        .update(fwguard::agent::UpdateMode::Install)
        .await
        .unwrap();
    // A health check with credentials in its URL.
    let secret = "[[health.check]]\nname = \"lan-admin\"\nkind = \"http\"\nurl = \"http://admin:hunter2@127.0.0.1:9/status?token=s3cret\"\n";
    let cfg = std::fs::read_to_string(&t.cfg).unwrap();
    std::fs::write(&t.cfg, format!("{cfg}\n{secret}")).unwrap();
    let out = t.cfg.parent().unwrap().join("bundle.tar.gz");
    let o = Command::new(env!("CARGO_BIN_EXE_fwguard"))
        .args([
            "--config",
            t.cfg.to_str().unwrap(),
            "diag",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list = common::tools::tool("tar", &["tzf", out.to_str().unwrap()]);
    let names: Vec<&str> = list.lines().collect();
    let want: Vec<String> = fwguard::agent::DIAG_PARTS
        .iter()
        .map(|p| format!("fwguard-diag/{p}"))
        .collect();
    assert_eq!(names, want);
    let part = |name: &str| {
        common::tools::tool(
            "tar",
            &[
                "xzf",
                out.to_str().unwrap(),
                "-O",
                &format!("fwguard-diag/{name}"),
            ],
        )
    };
    let config = part("config.toml");
    assert!(config.contains("[[health.check]]") && config.contains("lan-admin"));
    assert!(
        !config.contains("hunter2") && !config.contains("s3cret"),
        "{config}"
    );
    let status: serde_json::Value = serde_json::from_str(&part("status.json")).unwrap();
    assert_eq!(status["running_version"], "1.0");
    assert_eq!(status["update"]["state"], "armed");
    let history: serde_json::Value = serde_json::from_str(&part("history.json")).unwrap();
    assert!(history
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["event"] == "verified"));
    assert!(part("versions.txt").starts_with(&format!("fwguard {}", env!("CARGO_PKG_VERSION"))));
    assert!(part("bootloader.txt").contains("upgrade_available=1"));
    assert!(part("doctor.txt").contains("ok   running slot: running A"));
    assert!(!part("log.txt").is_empty());
}

/// Credentials in the index URL and in a health check's URL reach error texts, check
/// details and the commit's detail; none of them may reach the history, the state, the
/// status, the queued outcome report, the runtime records or the bundle.
#[tokio::test]
async fn credentials_in_urls_never_reach_what_fwguard_writes() {
    let mut t = world("off").await;
    t.world.publish(&["1.1"]).unwrap();
    let cfg = std::fs::read_to_string(&t.cfg).unwrap();
    let url = t.world.index_url();
    let with_creds = url.replace("http://", "http://idxuser:idxpass@");
    let cfg = cfg.replace(
        &format!("url = \"{url}\""),
        &format!("url = \"{with_creds}\""),
    );
    // An advisory-free check that fails before and after the update (so it is excused and
    // its detail lands in the commit's detail), with credentials and a token in its URL.
    let check = "\n[[health.check]]\nname = \"lan-admin\"\nkind = \"http\"\nurl = \"http://admin:hunter2@127.0.0.1:9/status?token=s3cret\"\ntimeout = \"500ms\"\n\n[report]\nurl = \"http://127.0.0.1:9/report\"\ntimeout = \"1s\"\n";
    std::fs::write(&t.cfg, format!("{cfg}{check}")).unwrap();
    // The image is missing at first: the failed install's error names its URL.
    let img = t.world.www.join("images/fw-1.1.img");
    let kept = std::fs::read(&img).unwrap();
    std::fs::remove_file(&img).unwrap();
    let o = common::fwguard(&t.cfg, &["update", "--force"]).await;
    assert_eq!(o.status.code(), Some(fwguard::error::EXIT_NETWORK));
    assert!(String::from_utf8_lossy(&o.stderr).contains("404"));
    std::fs::write(&img, kept).unwrap();
    let o = common::fwguard(&t.cfg, &["update", "--force"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    t.power_cycle().await;
    t.settle().await;
    let st = t.state();
    assert!(
        common::history_has(&st, "committed", "1.1"),
        "{:?}",
        st.history
    );
    let queued: Vec<&str> = st.outcomes.iter().map(|o| o.result.as_str()).collect();
    assert_eq!(
        queued,
        ["installing", "installing", "armed", "committed"],
        "the reports stay queued (receiver down)"
    );
    let out = t.cfg.parent().unwrap().join("bundle.tar.gz");
    let o = common::fwguard(&t.cfg, &["diag", "-o", out.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = common::fwguard(&t.cfg, &["status", "--json"]).await;
    let history = common::fwguard(&t.cfg, &["history"]).await;
    let mut texts = vec![
        (
            "state.json",
            std::fs::read_to_string(t.settings().state_dir.join("state.json")).unwrap(),
        ),
        (
            "status",
            String::from_utf8_lossy(&status.stdout).into_owned(),
        ),
        (
            "history",
            String::from_utf8_lossy(&history.stdout).into_owned(),
        ),
        ("outcome", serde_json::to_string(&st.outcomes).unwrap()),
    ];
    for f in ["health.json", "round.json"] {
        if let Ok(s) = std::fs::read_to_string(t.settings().runtime_dir.join(f)) {
            texts.push((f, s));
        }
    }
    let bundle_from = texts.len();
    for p in fwguard::agent::DIAG_PARTS {
        let text = common::tools::tool(
            "tar",
            &[
                "xzf",
                out.to_str().unwrap(),
                "-O",
                &format!("fwguard-diag/{p}"),
            ],
        );
        texts.push((p, text));
    }
    // What would have carried them: the failed install and the excused check's detail.
    let joined: String = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert!(joined.contains("install-failed") && joined.contains("lan-admin"));
    for (name, text) in &texts {
        for secret in ["idxpass", "hunter2", "s3cret"] {
            assert!(!text.contains(secret), "{secret} in {name}: {text}");
        }
    }
    // Nor is the device's report key in the bundle.
    assert_eq!(st.report_key.len(), 64);
    for (name, text) in &texts[bundle_from..] {
        assert!(!text.contains(&st.report_key), "the report key in {name}");
    }
}
