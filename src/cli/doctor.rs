//! `fwguard doctor`: the board's update path checked, each finding with its fix.

use crate::config::{self, Settings};
use crate::error::{Error, EXIT_OK};

/// `fwguard doctor`: read-only; never takes the state lock, so it runs beside the daemon.
pub(super) fn run(cfg: Option<&std::path::Path>) -> Result<i32, Error> {
    let settings = Settings::load(&config::resolve_path(cfg))?;
    let board = crate::board::Board::from_settings(&settings.board);
    println!(
        "board {} (profile {})",
        settings.board.id(),
        settings.board.profile()
    );
    let findings = crate::board::preflight::all(&settings, board.as_ref());
    for f in &findings {
        println!(
            "{} {}: {}",
            if f.ok { "ok  " } else { "FAIL" },
            f.check,
            f.detail
        );
        if let Some(fix) = &f.fix {
            println!("     fix: {fix}");
        }
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    if failed > 0 {
        eprintln!("fwguard: doctor: {failed} check(s) failed");
        return Ok(crate::error::EXIT_CONFIG);
    }
    Ok(EXIT_OK)
}
