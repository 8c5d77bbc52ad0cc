//! Reports per second the fleet service ingests (signature checked, stored once, its release
//! judged), on SQLite and on a real PostgreSQL server on this machine (a cluster of its own,
//! as the tests run it; needs root). `cargo bench --features fleet --bench fleet` runs the
//! service as it runs by default (counting devices known before their wave): 1,000 devices
//! say hello, then their release is published, then it ingests their reports (installing,
//! armed, committed each) and prints reports/s per database, with a baseline measured in the
//! same run: Ed25519 checks per second of the same reports (the least an ingest must do).
//! Under `cargo test` it does the same with a few on SQLite and checks the counts, so it
//! cannot rot.

#[path = "../tests/common/postgres.rs"]
mod postgres;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use fwguard::fleet::rule::Rule;
use fwguard::fleet::{store::Store, Fleet, FleetConfig};
use fwguard::index::sign::SecretKey;
use std::time::Instant;

/// (body, key, signature) as sent.
type Signed = (Vec<u8>, String, String);

/// Each device's hello, then (body, key, signature) of each report: `devices` devices,
/// three reports each.
fn reports(devices: usize) -> (Vec<Signed>, Vec<Signed>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut hellos = Vec::new();
    let mut out = Vec::new();
    for d in 0..devices {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(d as u64 + 1).to_le_bytes());
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = b64.encode(key.verifying_key().as_bytes());
        let hello = serde_json::json!({
            "schema": 1, "device": format!("dev-{d}"), "board": "b", "result": "hello",
            "release": "1.0", "at": 1_800_000_000u64, "id": format!("{d}-h"),
        })
        .to_string()
        .into_bytes();
        let sig = b64.encode(key.sign(&hello).to_bytes());
        hellos.push((hello, public.clone(), sig));
        for (i, result) in ["installing", "armed", "committed"].iter().enumerate() {
            let body = serde_json::json!({
                "schema": 1, "device": format!("dev-{d}"), "board": "b", "release": "2.0",
                "result": result, "failing": [], "detail": "", "at": 1_800_000_000u64,
                "id": format!("{d}-{i}"), "deadline_s": 900,
            })
            .to_string()
            .into_bytes();
            let sig = b64.encode(key.sign(&body).to_bytes());
            out.push((body, public.clone(), sig));
        }
    }
    (hellos, out)
}

/// Publish release 2.0 (for everyone at once) in `dir`'s index.
fn publish(dir: &std::path::Path) {
    let now = fwguard::time::unix_now();
    let mut d = fwguard::index::build::IndexDraft::new(1, now, now + 86_400);
    d.add_release(fwguard::index::build::NewRelease::new(
        "2.0".parse().unwrap(),
        vec!["b".into()],
        vec!["stable".into()],
        vec!["images/fw-2.0.img".into()],
        1,
        [0; 32],
    ))
    .unwrap();
    std::fs::write(dir.join("index.toml"), d.to_toml()).unwrap();
}

/// On a fresh service on database `at`: the devices' `hellos` an hour ago, then the release
/// published, then `all` their reports ingested; reports per second.
fn ingest(at: &str, handle: &tokio::runtime::Handle, hellos: &[Signed], all: &[Signed]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FleetConfig {
        index_dir: dir.path().to_path_buf(),
        halt_key: SecretKey::generate().unwrap(),
        rule: Rule::default(),
        grace: 60,
        halt_valid: 86_400,
        per_source_minute: u32::MAX,
        per_device_minute: u32::MAX,
        known_before_wave: true,
    };
    let fleet = Fleet::new(cfg, Store::open(at, Some(handle.clone())).unwrap());
    let now = fwguard::time::unix_now();
    for (body, key, sig) in hellos {
        fleet.ingest(body, key, sig, now - 3600).unwrap();
    }
    publish(dir.path());
    let t = Instant::now();
    for (body, key, sig) in all {
        fleet.ingest(body, key, sig, now).unwrap();
    }
    let rate = all.len() as f64 / t.elapsed().as_secs_f64();
    let v = fleet.view(now).unwrap();
    let committed: u32 = v[0].waves.iter().map(|w| w.committed).sum();
    assert_eq!((committed as usize, v[0].uncounted), (all.len() / 3, 0));
    rate
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let devices = if benching { 1_000 } else { 20 };
    let (hellos, all) = reports(devices);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("bench.sqlite").display().to_string();
    let lite = ingest(&sqlite, rt.handle(), &hellos, &all);
    if !benching {
        return;
    }
    // The baseline: checking the same signatures as the service does, nothing else.
    let b64 = base64::engine::general_purpose::STANDARD;
    let decoded: Vec<([u8; 32], [u8; 64], &[u8])> = all
        .iter()
        .map(|(body, key, sig)| {
            (
                b64.decode(key).unwrap().try_into().unwrap(),
                b64.decode(sig).unwrap().try_into().unwrap(),
                body.as_slice(),
            )
        })
        .collect();
    let t = Instant::now();
    for (k, s, body) in &decoded {
        fwguard::index::ed25519::check(k, body, s).unwrap();
    }
    let base = all.len() as f64 / t.elapsed().as_secs_f64();
    let pg = postgres::Postgres::start();
    let pg_rate = ingest(&pg.url, rt.handle(), &hellos, &all);
    println!(
        "fleet ingest, {} reports of {devices} devices:\n  sqlite      {lite:8.0} reports/s ({:.3} of the baseline)\n  postgresql  {pg_rate:8.0} reports/s ({:.3} of the baseline)\n  baseline    {base:8.0} Ed25519 checks/s of the same reports",
        all.len(),
        lite / base,
        pg_rate / base
    );
}
