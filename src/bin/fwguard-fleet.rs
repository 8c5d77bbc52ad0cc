//! `fwguard-fleet`: the vendor's fleet service (see `fwguard::fleet`).

use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "fwguard-fleet",
    version,
    about = "Collect fwguard devices' reports, tally each release's waves, and halt a bad release with the halt key"
)]
struct Args {
    /// The database: a SQLite file (created if missing), or postgres://USER@HOST/DB
    #[arg(long, default_value = "fleet.sqlite")]
    db: String,
    /// Where to listen (the devices' `[report] url` points here, at /report)
    #[arg(long, default_value = "127.0.0.1:8480")]
    listen: String,
    /// The published index directory (index.toml is read for the waves; halt.toml is written)
    #[arg(long)]
    index_dir: PathBuf,
    /// The halt key's secret key file (the trust root's halt role)
    #[arg(long)]
    halt_key: PathBuf,
    /// Halt on any failure in the first wave (else only by the share below)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    first_wave_any: bool,
    /// Devices that must have armed a trial in a wave before its share of failures counts
    #[arg(long, default_value_t = 5)]
    min_armed: u32,
    /// The share of a wave's armed trials that failed (percent) that halts the release
    #[arg(long, default_value_t = 20)]
    max_failed_percent: u32,
    /// Time allowed for a reboot on top of a trial's deadline before it is presumed failed
    #[arg(long, default_value = "5m")]
    grace: String,
    /// How long each signed halt file is valid (signed again at half of it)
    #[arg(long, default_value = "7d")]
    halt_valid: String,
    /// How often every release is judged again (presumed failures come with time alone)
    #[arg(long, default_value = "30s")]
    tick: String,
    /// Reports taken a minute from one source address
    #[arg(long, default_value_t = 600)]
    per_source_minute: u32,
    /// Reports taken a minute for one device
    #[arg(long, default_value_t = 20)]
    per_device_minute: u32,
    /// Count a device in a wave only if it was heard of (its daemon's hello, or a report)
    /// before the wave began, so made-up devices cannot tip a wave under way; false counts
    /// every device that reports
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    known_before_wave: bool,
}

fn secs(s: &str) -> anyhow::Result<u64> {
    Ok(humantime::parse_duration(s)
        .map_err(|e| anyhow::anyhow!("{s:?} is not a duration such as 5m: {e}"))?
        .as_secs())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = tracing::subscriber::set_global_default(fwguard::cli::stderr_logger());
    let key_text = std::fs::read_to_string(&a.halt_key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.halt_key.display()))?;
    let halt_key = fwguard::index::sign::SecretKey::parse(&key_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.halt_key.display()))?;
    let cfg = fwguard::fleet::FleetConfig {
        index_dir: a.index_dir,
        halt_key,
        rule: fwguard::fleet::rule::Rule {
            first_wave_any: a.first_wave_any,
            min_armed: a.min_armed,
            max_failed_percent: a.max_failed_percent,
        },
        grace: secs(&a.grace)?,
        halt_valid: secs(&a.halt_valid)?,
        per_source_minute: a.per_source_minute,
        per_device_minute: a.per_device_minute,
        known_before_wave: a.known_before_wave,
    };
    let tick = std::time::Duration::from_secs(secs(&a.tick)?.max(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = fwguard::fleet::store::Store::open(&a.db, Some(rt.handle().clone()))?;
    let fleet = std::sync::Arc::new(fwguard::fleet::Fleet::new(cfg, store));
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .map_err(|e| anyhow::anyhow!("listening on {}: {e}", a.listen))?;
        eprintln!("fwguard-fleet: listening on {}", listener.local_addr()?);
        fwguard::fleet::serve(fleet, listener, tick).await?;
        Ok(())
    })
}
