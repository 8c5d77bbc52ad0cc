//! The progress of a manual install: plain lines when stderr is not a terminal, a bar redrawn
//! in place on a terminal (a pseudo-terminal from the real `script`).

use super::common;

use common::{world, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_lines_when_stderr_is_not_a_terminal() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let o = tokio::process::Command::new(BIN)
        .args([
            "--config",
            t.cfg.to_str().unwrap(),
            "update",
            "--stage-only",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("1.1: ")).collect();
    // The 1 MiB image in several chunks: at least three tenths, rising, ending at 100%.
    assert!(lines.len() >= 3, "{err}");
    let pcts: Vec<u64> = lines
        .iter()
        .map(|l| l[5..l.find('%').unwrap()].parse().unwrap())
        .collect();
    assert!(pcts.windows(2).all(|w| w[0] < w[1]), "{pcts:?}");
    assert_eq!(*lines.last().unwrap(), "1.1: 100% written (1.0 of 1.0 MiB)");
    assert!(!err.contains('\r'), "no carriage returns off a terminal");
    // The result itself stays on stdout.
    assert!(String::from_utf8_lossy(&o.stdout).contains("1.1 is written and verified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bar_redrawn_in_place_on_a_terminal() {
    let mut t = world("off").await;
    t.world.publish(&["1.0", "1.1"]).unwrap();
    let cmd = format!("{BIN} --config {} update --stage-only", t.cfg.display());
    let o = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .await
        .expect("script (util-linux) runs");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("\r1.1 ["), "{out:?}");
    let end = format!("[{}] 100%  1.0/1.0 MiB", "#".repeat(30));
    assert!(out.contains(&end), "{out:?}");
    assert!(!out.contains("1.1: 10% written"), "{out:?}");
}
