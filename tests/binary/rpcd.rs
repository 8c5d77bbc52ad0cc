//! The rpcd exec plugin, called the way rpcd calls it: the shipped script with `list`, and
//! with `call METHOD` and the arguments as JSON on stdin, the configuration found through
//! the environment (rpcd passes no options), against a sim router.

use super::common;

use common::{repo, world, TestWorld, BIN};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// The shipped plugin, pointed at this build's binary.
fn plugin(t: &TestWorld) -> std::path::PathBuf {
    let script = std::fs::read_to_string(repo("packaging/openwrt/files/fwguard.rpcd")).unwrap();
    assert!(
        script.contains("exec /usr/sbin/fwguard rpcd \"$@\""),
        "{script}"
    );
    let path = t.cfg.with_file_name("rpcd-fwguard");
    std::fs::write(&path, script.replace("/usr/sbin/fwguard", BIN)).unwrap();
    path
}

/// Run the plugin with `args` and `stdin`; its answer must be one JSON object.
fn rpcd(t: &TestWorld, args: &[&str], stdin: &str) -> Value {
    let mut child = Command::new("sh")
        .arg(plugin(t))
        .args(args)
        .env("FWGUARD_CONFIG", &t.cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text:?} {:?}", out.stderr));
    assert!(answer.is_object(), "{answer}");
    answer
}

fn call(t: &TestWorld, method: &str, args: Value) -> Value {
    rpcd(t, &["call", method], &args.to_string())
}

/// Every file of the state directory, to show that a refused call changed nothing.
fn state_files(t: &TestWorld) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walkdir(&t.settings().state_dir);
    files.sort();
    files
}

fn walkdir(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_gives_every_method_and_its_argument_types() {
    let t = world("off").await;
    let list = rpcd(&t, &["list"], "");
    let methods: Vec<&str> = list
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut want = vec![
        "approve", "check", "deny", "history", "hold", "pin", "policy", "release", "rollback",
        "status", "unpin",
    ];
    want.sort();
    assert_eq!(methods, want);
    assert_eq!(
        list["pin"],
        json!({"version": "str", "force_insecure": false})
    );
    assert_eq!(list["policy"], json!({"mode": "str"}));
    assert_eq!(list["approve"], json!({"version": "str"}));
    assert_eq!(list["deny"], json!({"version": "str"}));
    assert_eq!(list["status"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answer_the_commands_json_and_act_as_the_commands_do() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let status = call(&t, "status", json!({}));
    let cli = common::fwguard(&t.cfg, &["status", "--json"]).await;
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(status["booted_slot"], cli["booted_slot"], "{status}");
    assert_eq!(status["pinned"], Value::Null);

    let pin = call(&t, "pin", json!({"version": "1.0"}));
    assert_eq!(
        (&pin["ok"], &pin["code"]),
        (&json!(true), &json!(0)),
        "{pin}"
    );
    assert_eq!(t.state().pin.as_ref().map(|v| v.as_str()), Some("1.0"));
    assert_eq!(call(&t, "status", json!({}))["pinned"], json!("1.0"));
    let unpin = call(&t, "release", json!({}));
    assert_eq!(unpin["ok"], json!(true), "{unpin}");
    assert_eq!(t.state().pin, None);

    let hold = call(&t, "hold", json!({}));
    assert_eq!(hold["ok"], json!(true), "{hold}");
    assert!(t.state().hold);
    assert_eq!(call(&t, "unpin", json!({}))["ok"], json!(true));
    assert!(!t.state().hold);
    let forced = call(&t, "pin", json!({"version": "1.0", "force_insecure": true}));
    assert_eq!(forced["ok"], json!(true), "{forced}");
    call(&t, "unpin", json!({}));
    // Nothing to go back to: the command's own refusal, and its code.
    let rollback = call(&t, "rollback", json!({}));
    assert_eq!(rollback["ok"], json!(false), "{rollback}");
    assert!(rollback["code"].as_i64().unwrap() > 0, "{rollback}");

    let check = call(&t, "check", json!({}));
    // What the command printed, not its log lines.
    let cli = common::fwguard(&t.cfg, &["check"]).await;
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(check["message"], json!(printed.trim()), "{check}");
    assert_eq!(check["ok"], json!(true), "{check}");
    assert!(
        check["message"].as_str().unwrap().contains("1.1"),
        "{check}"
    );
    let history = call(&t, "history", json!({}));
    assert!(history["history"].is_array(), "{history}");

    // Deny, then approve: the owner's decision on the exact bytes, shown in status.
    let deny = call(&t, "deny", json!({"version": "1.1"}));
    assert_eq!(deny["ok"], json!(true), "{deny}");
    let decisions = &call(&t, "status", json!({}))["decisions"];
    assert_eq!(decisions[0]["verdict"], json!("denied"), "{decisions}");
    let approve = call(&t, "approve", json!({"version": "1.1"}));
    assert_eq!(approve["ok"], json!(true), "{approve}");
    assert!(
        approve["message"]
            .as_str()
            .unwrap()
            .starts_with("approved 1.1"),
        "{approve}"
    );
    let decisions = &call(&t, "status", json!({}))["decisions"];
    assert_eq!(decisions[0]["verdict"], json!("approved"), "{decisions}");
    assert_eq!(decisions[0]["key"]["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_answered_in_json_and_change_nothing() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    // The first check adopts the running firmware: a state to keep unchanged.
    call(&t, "check", json!({}));
    let (files, slots) = (state_files(&t), t.snapshot());
    assert!(!files.is_empty());
    for (method, args, words) in [
        ("pin", "{}", &["pin: version is missing"][..]),
        ("approve", "{}", &["approve: version is missing"]),
        (
            "deny",
            r#"{"version": "-1"}"#,
            &["version \"-1\" must not start with '-'"],
        ),
        (
            "pin",
            r#"{"version": 5}"#,
            &["version must be a non-empty string, not 5"],
        ),
        (
            "pin",
            r#"{"version": "--help"}"#,
            &["version \"--help\" must not start with '-'"],
        ),
        (
            "pin",
            r#"{"version": "1.1", "when": "now"}"#,
            &["unknown argument \"when\"", "version, force_insecure"],
        ),
        (
            "pin",
            r#"{"version": "1.1", "force_insecure": "yes"}"#,
            &["force_insecure must be true or false"],
        ),
        (
            "status",
            r#"{"verbose": true}"#,
            &["unknown argument \"verbose\" (arguments: none)"],
        ),
        ("status", "not json", &["the arguments are not JSON"]),
        (
            "pin",
            r#"{"version": "1.1\u0000"}"#,
            &["must not start with '-' or hold a NUL"],
        ),
        ("status", "[1]", &["must be a JSON object"]),
        (
            "reboot",
            "{}",
            &["unknown method \"reboot\"", "status, history"],
        ),
    ] {
        let answer = rpcd(&t, &["call", method], args);
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(
            words.iter().all(|w| error.contains(w)),
            "{method} {args}: {error}"
        );
    }
    // Arguments of the right shape that the command refuses: its exit code and message.
    let policy = call(&t, "policy", json!({"mode": "sometimes"}));
    assert_eq!(
        (&policy["ok"], &policy["code"]),
        (&json!(false), &json!(2)),
        "{policy}"
    );
    assert!(
        policy["message"].as_str().unwrap().contains("sometimes"),
        "{policy}"
    );
    let approve = call(&t, "approve", json!({"version": "9.9"}));
    assert_eq!(approve["ok"], json!(false), "{approve}");
    assert!(
        approve["message"]
            .as_str()
            .unwrap()
            .contains("lists no 9.9"),
        "{approve}"
    );
    let deny = call(&t, "deny", json!({"version": "one"}));
    assert_eq!(
        (&deny["ok"], &deny["code"]),
        (&json!(false), &json!(2)),
        "{deny}"
    );
    let pin = call(&t, "pin", json!({"version": "9.9"}));
    assert_eq!(pin["ok"], json!(false), "{pin}");
    assert!(pin["message"].as_str().unwrap().contains("9.9"), "{pin}");
    assert_eq!(
        rpcd(&t, &["frobnicate"], "")["error"],
        json!("usage: fwguard rpcd list | fwguard rpcd call METHOD")
    );
    assert_eq!(
        state_files(&t),
        files,
        "a refused call changed the state directory"
    );
    assert!(
        t.snapshot() == slots,
        "a refused call wrote the slots or the env"
    );
}

/// The ACL puts the read-only methods and the others in groups of their own, and between
/// them covers every method the plugin lists.
#[test]
fn the_acl_separates_reading_from_changing() {
    let acl: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("packaging/openwrt/files/fwguard.acl.json")).unwrap(),
    )
    .unwrap();
    let methods = |group: &str, access: &str| -> Vec<String> {
        acl[group][access]["ubus"]["fwguard"]
            .as_array()
            .unwrap_or_else(|| panic!("{group}.{access}: {acl}"))
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    let read = methods("fwguard-status", "read");
    let write = methods("fwguard-control", "write");
    assert_eq!(read, ["status", "history"]);
    assert!(acl["fwguard-status"].get("write").is_none());
    assert!(acl["fwguard-control"].get("read").is_none());
    let out = Command::new(BIN).args(["rpcd", "list"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all: Vec<String> = read.into_iter().chain(write).collect();
    all.sort();
    let mut listed: Vec<String> = list.as_object().unwrap().keys().cloned().collect();
    listed.sort();
    assert_eq!(all, listed);
}
