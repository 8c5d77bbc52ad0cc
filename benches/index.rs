//! Verify + select on a large signed index: 10,000 releases for 50 boards, as a vendor with a
//! long history would publish. `cargo bench --bench index` prints the median of many runs and
//! its ratio to a baseline measured in the same run (SHA-512 over the same bytes, the hash
//! every Ed25519 check must compute anyway). Under `cargo test` it runs once on a small index
//! and checks the answer, so it cannot rot.

use fwguard::index::build::{sign_bytes, IndexDraft, NewRelease};
use fwguard::index::select::{select, Choice, Wanted};
use fwguard::index::sign::SecretKey;
use fwguard::index::{TrustPolicy, UntrustedIndex};
use fwguard::version::Version;
use sha2::Digest;
use std::time::{Duration, Instant};

const BOARDS: usize = 50;

/// The version of a board's `n`th release: 1.0.0, 1.0.1, ..., 1.9.9, 2.0.0, ...
fn version(n: usize) -> Version {
    format!("{}.{}.{}", 1 + n / 100, n % 100 / 10, n % 10)
        .parse()
        .unwrap()
}

fn index(releases: usize, key: &SecretKey, now: u64) -> UntrustedIndex {
    let mut draft = IndexDraft::new(7, now - 60, now + 86_400);
    for i in 0..releases {
        let board = format!("board-{}", i % BOARDS);
        let version = version(i / BOARDS);
        let mut sha256 = [0u8; 32];
        sha256[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let url = format!("images/{board}/fw-{version}.img");
        draft
            .add_release(NewRelease::new(
                version,
                vec![board],
                vec!["stable".into()],
                vec![url],
                30_000_000 + i as u64,
                sha256,
            ))
            .unwrap();
    }
    let bytes = draft.to_toml().into_bytes();
    let signatures = sign_bytes(key, &bytes, "bench.pub").into_bytes();
    UntrustedIndex { bytes, signatures }
}

/// Verify the index and choose the release for board-7 running 1.0.0; returns the choice.
fn verify_and_select(idx: &UntrustedIndex, policy: &TrustPolicy, now: u64) -> Version {
    // The copy stands for the fetch that hands the agent its own bytes.
    let verified = idx
        .clone()
        .verify(policy, None, now, 0)
        .expect("index verifies");
    let running: Version = "1.0.0".parse().unwrap();
    let want = Wanted {
        board: "board-7",
        channel: "stable",
        running: Some(&running),
        pinned: None,
        force_insecure: false,
        denylist: &[],
        device_id: "bench-device",
        compat: fwguard::carry::CompatVersion::DEFAULT,
        no_settings: false,
        halts: None,
    };
    match select(&verified, &want).expect("selects") {
        Choice::Install(r) => r.version.clone(),
        Choice::UpToDate { reason } | Choice::NeedsOwner { reason, .. } => {
            panic!("expected an install, got: {reason}")
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let releases = if benching { 10_000 } else { 500 };
    let key = SecretKey::generate().unwrap();
    let policy = TrustPolicy {
        keys: vec![key.public()],
        threshold: 1,
    };
    let now = fwguard::time::unix_now();
    let idx = index(releases, &key, now);
    // The newest release of board-7 is the last one added for it.
    let newest = (0..releases).rfind(|i| i % BOARDS == 7).unwrap() / BOARDS;
    let expect = version(newest);
    assert_eq!(verify_and_select(&idx, &policy, now), expect);
    if !benching {
        return;
    }
    // The work and its baseline alternate, and each run's ratio uses the baseline measured
    // right beside it: a machine whose speed drifts (other load, frequency) moves both.
    let runs = 31;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let (mut works, mut bases, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let w = time(&mut || {
            std::hint::black_box(verify_and_select(&idx, &policy, now));
        });
        let b = time(&mut || {
            std::hint::black_box(sha2::Sha512::digest(&idx.bytes));
        });
        let b2 = time(&mut || {
            std::hint::black_box(sha2::Sha512::digest(&idx.bytes));
        });
        let b = b.min(b2);
        works.push(w);
        bases.push(b);
        ratios.push(w.as_secs_f64() / b.as_secs_f64());
    }
    let work = median(works);
    let base = median(bases);
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[runs / 2];
    println!(
        "index verify+select: {releases} releases, {} bytes: median {:.2} ms over {runs} runs; \
         baseline sha512 of the same bytes {:.3} ms; ratio {ratio:.1} (median of each run's \
         ratio to its own baseline)",
        idx.bytes.len(),
        work.as_secs_f64() * 1e3,
        base.as_secs_f64() * 1e3,
    );
}
