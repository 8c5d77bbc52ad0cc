//! `fwguard diag`: the support bundle opens with the real `tar tzf`, holds every part, and
//! the configuration in it has its secrets removed.

mod common;

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
