use super::read_text;
use crate::index::sign::PublicKey;
use crate::index::{format_time, unix_now, TrustPolicy, UntrustedIndex};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Index file; its signatures are read from INDEX.sig
    index: PathBuf,
    /// Trusted public key file (repeatable)
    #[arg(long = "public", short = 'p', required = true)]
    public: Vec<PathBuf>,
    /// Signatures required from distinct trusted keys
    #[arg(long, default_value_t = 1)]
    threshold: usize,
}

pub fn run(a: Args) -> i32 {
    let fail = |msg: String| {
        eprintln!("fwguard-index: {msg}");
        crate::error::EXIT_VERIFICATION
    };
    let mut keys = Vec::new();
    for p in &a.public {
        match read_text(p).map(|t| PublicKey::parse(&t)) {
            Ok(Ok(k)) => keys.push(k),
            Ok(Err(e)) => return fail(format!("{}: {e}", p.display())),
            Err(e) => return fail(e.0),
        }
    }
    let sig_path = PathBuf::from(format!("{}.sig", a.index.display()));
    let (bytes, signatures) = match (std::fs::read(&a.index), std::fs::read(&sig_path)) {
        (Ok(b), Ok(s)) => (b, s),
        (Err(e), _) => return fail(format!("{}: {e}", a.index.display())),
        (_, Err(e)) => return fail(format!("{}: {e}", sig_path.display())),
    };
    let trust = TrustPolicy {
        keys,
        threshold: a.threshold,
    };
    match (UntrustedIndex { bytes, signatures }).verify(&trust, None, unix_now(), 0) {
        Ok(ix) => {
            println!(
                "OK: index version {}, {} release(s), signed by {}, expires {}",
                ix.version(),
                ix.releases().len(),
                ix.signers()
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                format_time(ix.expires())
            );
            0
        }
        Err(e) => fail(format!("REFUSED: {e}")),
    }
}
