//! The `fwguard` binary: exit codes, configuration errors, JSON status, the lock.

use super::common;

use common::{fwguard, BIN};

use common::world;
use std::path::Path;
use std::process::Output;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Write a config with `edit` applied to a valid one; expect exit 3 naming `words`.
async fn bad_config(edit: impl Fn(String) -> String, words: &[&str]) {
    let t = world("off").await;
    let good = std::fs::read_to_string(&t.cfg).unwrap();
    let bad = edit(good.clone());
    assert_ne!(bad, good, "the edit changed nothing");
    let p = t.cfg.with_file_name("bad.toml");
    std::fs::write(&p, bad).unwrap();
    let before = t.snapshot();
    let o = fwguard(&p, &["update"]).await;
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&p.display().to_string()),
        "no file name in {err:?}"
    );
    for w in words {
        assert!(err.contains(w), "{err:?} does not mention {w:?}");
    }
    assert_eq!(t.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_named() {
    bad_config(
        |c| c.replace("check_interval", "check_intervall"),
        &["unknown field `check_intervall`"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_type_is_named() {
    bad_config(
        |c| c.replace("check_interval = \"1s\"", "check_interval = 5"),
        &["check_interval", "invalid type"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_trusted_key_is_named() {
    bad_config(
        |c| {
            c.lines()
                .filter(|l| !l.starts_with("trusted_key_files"))
                .collect::<Vec<_>>()
                .join("\n")
        },
        &["index.trusted_keys", "no trusted key"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_trusted_key_is_named() {
    bad_config(
        |c| {
            c.replace(
                "trusted_key_files",
                "trusted_keys = [\"RWQnotakey\"]\nunused_files",
            )
        },
        &["unknown field `unused_files`"],
    )
    .await;
    bad_config(
        |c| c.replace("[index]", "[index]\ntrusted_keys = [\"RWQnotakey\"]"),
        &["index.trusted_keys[0]", "not a signify/usign public key"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_duration_and_policy_are_named() {
    bad_config(
        |c| c.replace("deadline = \"1500ms\"", "deadline = \"soon\""),
        &["trial.deadline", "\"soon\""],
    )
    .await;
    bad_config(
        |c| c.replace("policy = \"off\"", "policy = \"sometimes\""),
        &["agent.policy", "sometimes"],
    )
    .await;
    bad_config(
        |c| c + "\n[report]\nurl = \"ftp://vendor.example/report\"\n",
        &["report.url", "\"ftp\" is not http or https"],
    )
    .await;
    bad_config(
        |c| c + "\n[report]\nurl = \"http://vendor.example/r\"\ntimeout = \"later\"\n",
        &["report.timeout", "\"later\""],
    )
    .await;
}

/// Host names are ASCII: an internationalised one is refused naming the key, and its
/// `xn--` form is what to write (the router build leaves IDNA's Unicode tables out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ascii_host_name_is_refused_and_its_ascii_form_accepted() {
    // The first `url = ` line is the index's.
    let index_url = |c: String, to: &str| {
        let at = c.find("\nurl = \"").unwrap() + 1;
        let end = at + c[at..].find('\n').unwrap();
        format!("{}url = \"{to}\"{}", &c[..at], &c[end..])
    };
    bad_config(
        |c| index_url(c, "http://bücher.example/index.toml"),
        &["index.url", "bücher.example", "is not a URL"],
    )
    .await;
    let t = world("off").await;
    let ascii = index_url(
        std::fs::read_to_string(&t.cfg).unwrap(),
        "http://xn--bcher-kva.example/index.toml",
    );
    std::fs::write(&t.cfg, ascii).unwrap();
    let o = fwguard(&t.cfg, &["status"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_file_and_env_var() {
    let o = fwguard(Path::new("/nonexistent/fwguard.toml"), &["status"]).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o)
            .1
            .contains("/nonexistent/fwguard.toml: cannot read"),
        "{}",
        text(&o).1
    );
    // $FWGUARD_CONFIG is used when there is no flag.
    let t = world("off").await;
    let o = tokio::process::Command::new(BIN)
        .arg("status")
        .env("FWGUARD_CONFIG", &t.cfg)
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_error_exits_2() {
    let o = tokio::process::Command::new(BIN)
        .arg("frobnicate")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = tokio::process::Command::new(BIN)
        .args(["pin", "not-a-version"])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("invalid version"), "{}", text(&o).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_check_exit_code() {
    let mut t = world("off").await;
    let o = fwguard(&t.cfg, &["status", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["booted_slot"], "A");
    // Nothing identified the firmware the router came with yet.
    assert_eq!(v["running_version"], serde_json::Value::Null);
    assert_eq!(v["slots"][0]["identified"], "unknown");
    assert_eq!(v["update"]["state"], "idle");
    assert_eq!(v["boot"]["trial"], false);

    t.world.publish(&["1.0"]).unwrap();
    let o = fwguard(&t.cfg, &["check", "--exit-code"]).await;
    assert_eq!(o.status.code(), Some(10), "{:?}", text(&o));
    // The check identified it by the signed index.
    let o = fwguard(&t.cfg, &["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["running_version"], "1.0");
    assert_eq!(v["slots"][0]["identified"], "adopted");
    assert_eq!(v["slots"][0]["verifies"], true);
    assert_eq!(v["slots"][1]["identified"], "unknown");
    assert_eq!(v["slots"][1]["verifies"], serde_json::Value::Null);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let o = fwguard(&t.cfg, &["check", "--exit-code"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).0.contains("update available: 1.1"),
        "{:?}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_during_a_trial_exits_5_and_a_held_lock_exits_4() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let o = fwguard(&t.cfg, &["update"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o)
        .0
        .contains("rebooting: trial boot of 1.1 in slot B"));
    t.power_cycle().await;
    t.agent().reconcile().unwrap();
    let o = fwguard(&t.cfg, &["update"]).await;
    assert_eq!(o.status.code(), Some(5), "{:?}", text(&o));
    assert!(text(&o)
        .1
        .contains("cannot begin an install while the update state is trial"));

    let store = fwguard::state::StateStore::new(t.settings().state_dir);
    let _held = store.lock(false).unwrap().unwrap();
    let o = fwguard(&t.cfg, &["mark-good"]).await;
    assert_eq!(o.status.code(), Some(4), "{:?}", text(&o));
    assert!(text(&o).1.contains("is held"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_sim_commands() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("r");
    let o = tokio::process::Command::new(BIN)
        .args(["sim", "create"])
        .arg(&sim)
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = tokio::process::Command::new(BIN)
        .args(["sim", "reboot"])
        .arg(&sim)
        .output()
        .await
        .unwrap();
    assert!(
        text(&o).0.contains("running firmware 1.0 from slot A"),
        "{:?}",
        text(&o)
    );

    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.2"]).unwrap();
    t.update_and_judge().await;
    let o = fwguard(&t.cfg, &["history"]).await;
    let (out, _) = text(&o);
    for w in [
        "adopted 1.0",
        "install 1.2",
        "armed 1.2",
        "trial-started 1.2",
        "rollback 1.2",
        "FAIL internet",
    ] {
        assert!(out.contains(w), "{w:?} missing from history:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_notifies_readiness_and_feeds_the_watchdog() {
    let t = world("off").await;
    let got = common::notifications_until(&t, 200_000, |seen| seen.len() >= 3).await;
    assert_eq!(got[0], "READY=1");
    assert!(got[1..].iter().all(|m| m == "WATCHDOG=1"), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assess_judges_a_trial_boot_and_exits() {
    let mut t = world("off").await;
    let o = fwguard(&t.cfg, &["assess"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).0.contains("this boot is committed"),
        "{:?}",
        text(&o)
    );
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(fwguard(&t.cfg, &["update"]).await.status.code(), Some(0));
    t.power_cycle().await;
    let o = fwguard(&t.cfg, &["assess"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("committed 1.1"), "{:?}", text(&o));
}

/// Every exit code of the table (README, src/error.rs), each made to happen once through the
/// binary, with the class of failure it stands for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exit_code_is_what_the_table_says() {
    use fwguard::error::*;
    let mut t = world("off").await;
    let run = |args: &'static [&'static str]| {
        let cfg = t.cfg.clone();
        async move { fwguard(&cfg, args).await }
    };
    let code = |o: &Output| o.status.code().unwrap();
    // 10: nothing to install; 0: something to install.
    t.world.publish(&["1.0"]).unwrap();
    assert_eq!(code(&run(&["check", "--exit-code"]).await), EXIT_NO_UPDATE);
    t.world.publish(&["1.0", "1.1"]).unwrap();
    assert_eq!(code(&run(&["check", "--exit-code"]).await), EXIT_OK);
    // 2: usage.
    assert_eq!(code(&run(&["check", "--bogus"]).await), EXIT_USAGE);
    // 3: configuration.
    let missing = fwguard(&t.world.root.join("nowhere.toml"), &["status"]).await;
    assert_eq!(code(&missing), EXIT_CONFIG);
    // 6: the signed index does not list the pinned version for this board.
    let o = run(&["pin", "7.7"]).await;
    assert_eq!(code(&o), EXIT_VERIFICATION, "{:?}", text(&o));
    assert!(text(&o).1.contains("is not in the index"), "{:?}", text(&o));
    // 9: the running firmware fails a required check (the WAN is down), so no install.
    t.world.wan.set_up(false).await.unwrap();
    let o = run(&["update"]).await;
    assert_eq!(code(&o), EXIT_UNHEALTHY, "{:?}", text(&o));
    assert!(text(&o).1.contains("fails required health checks"));
    assert_eq!(code(&run(&["health"]).await), EXIT_UNHEALTHY);
    t.world.wan.set_up(true).await.unwrap();
    // 8: an offline install's medium that cannot be read.
    let o = run(&["install", "/nonexistent/usb"]).await;
    assert_eq!(code(&o), EXIT_DEVICE, "{:?}", text(&o));
    // 5: not allowed in this state (mark-good while staged).
    assert_eq!(code(&run(&["update", "--stage-only"]).await), EXIT_OK);
    let o = run(&["mark-good"]).await;
    assert_eq!(code(&o), EXIT_DISALLOWED, "{:?}", text(&o));
    // 4: another fwguard holds the lock.
    let store = fwguard::state::StateStore::new(t.settings().state_dir);
    let held = store.lock(false).unwrap().unwrap();
    assert_eq!(code(&run(&["update"]).await), EXIT_IN_USE);
    drop(held);
    // 7: the vendor's server is gone.
    t.world.server.take().unwrap().stop();
    assert_eq!(code(&run(&["check"]).await), EXIT_NETWORK);
    // 1: an internal failure (the bundle cannot be written where asked).
    let o = run(&["diag", "-o", "/nonexistent/dir/bundle.tar.gz"]).await;
    assert_eq!(code(&o), EXIT_INTERNAL, "{:?}", text(&o));
}
