//! The carry itself: make what the plan carries, mount the target's file system, put it
//! there, sync and unmount. Nothing of the running firmware is written: the backup is made
//! in the runtime directory (RAM), and only the target slot's file system is mounted.

use super::medium::SettingsMedium;
use super::plan::{
    CarryPlan, BACKUP_PLACEHOLDER, MAX_BACKUP, OPENWRT_BACKUP_NAME, TARGET_PLACEHOLDER,
};
use super::CarryError;
use crate::slot::Slot;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `backup_command` and `carry` may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Carry the settings `plan` names into slot `target`'s file system on `medium`; returns
/// what was carried, for the log and history.
pub fn carry(
    plan: &CarryPlan,
    medium: &dyn SettingsMedium,
    target: Slot,
    runtime_dir: &Path,
) -> Result<String, CarryError> {
    match plan {
        CarryPlan::Nothing => Ok("nothing".into()),
        CarryPlan::OpenWrt { backup_command, .. } => {
            let backup = make_backup(backup_command, runtime_dir)?;
            let m = medium.open(target)?;
            crate::failpoint::hit("settings-mounted");
            let to = m.root().join(OPENWRT_BACKUP_NAME);
            crate::fsutil::write_atomic(&to, &backup).map_err(|e| {
                CarryError::io(
                    format!(
                        "write {OPENWRT_BACKUP_NAME} into {}",
                        medium.describe(target)
                    ),
                    e,
                )
            })?;
            m.close()?;
            Ok(format!(
                "the OpenWrt backup ({} bytes) as {OPENWRT_BACKUP_NAME} in {}",
                backup.len(),
                medium.describe(target)
            ))
        }
        CarryPlan::Keep { paths, .. } => {
            let m = medium.open(target)?;
            crate::failpoint::hit("settings-mounted");
            let mut copied = 0;
            for p in paths {
                let Ok(meta) = std::fs::symlink_metadata(p) else {
                    tracing::info!(
                        "kept path {} does not exist: nothing to carry of it",
                        p.display()
                    );
                    continue;
                };
                let rel = p.strip_prefix("/").unwrap_or(p);
                copy_tree(p, &meta, &m.root().join(rel))?;
                copied += 1;
            }
            m.close()?;
            Ok(format!(
                "{copied} of {} kept paths into {}",
                paths.len(),
                medium.describe(target)
            ))
        }
        CarryPlan::Command { command, .. } => {
            let m = medium.open(target)?;
            crate::failpoint::hit("settings-mounted");
            let at = m.root().to_string_lossy().into_owned();
            run("carry", command, TARGET_PLACEHOLDER, &at)?;
            m.close()?;
            Ok(format!(
                "the carry command {:?} on {}",
                command[0],
                medium.describe(target)
            ))
        }
    }
}

/// Run `command` with `placeholder` replaced by `value`; an error names the key and says why.
fn run(key: &str, command: &[String], placeholder: &str, value: &str) -> Result<(), CarryError> {
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| a.replace(placeholder, value))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = crate::command::run(&command[0], &args, COMMAND_TIMEOUT)
        .map_err(|e| CarryError::Refused(format!("settings.{key} {:?}: {e}", command[0])))?;
    if !done.status.success() {
        let said = String::from_utf8_lossy(&done.stderr.kept);
        let said = said.trim();
        return Err(CarryError::Refused(format!(
            "settings.{key} {:?} failed ({}){}{said}",
            command[0],
            done.status,
            if said.is_empty() { "" } else { ": " }
        )));
    }
    Ok(())
}

/// Run the backup command into a file in the runtime directory and read what it made,
/// checked to be a gzip archive of a sensible size.
fn make_backup(command: &[String], runtime_dir: &Path) -> Result<Vec<u8>, CarryError> {
    std::fs::create_dir_all(runtime_dir)
        .map_err(|e| CarryError::io(runtime_dir.display().to_string(), e))?;
    let file = runtime_dir.join("settings-backup.tgz");
    let _ = std::fs::remove_file(&file);
    let made = run(
        "backup_command",
        command,
        BACKUP_PLACEHOLDER,
        &file.to_string_lossy(),
    )
    .and_then(|()| read_backup(&file));
    let _ = std::fs::remove_file(&file);
    made
}

fn read_backup(file: &Path) -> Result<Vec<u8>, CarryError> {
    let len = std::fs::metadata(file)
        .map_err(|e| {
            CarryError::Refused(format!(
                "settings.backup_command made no backup at {}: {e}",
                file.display()
            ))
        })?
        .len();
    if len == 0 || len > MAX_BACKUP {
        return Err(CarryError::Refused(format!(
            "the settings backup {} is {len} bytes (it must be between 1 and {MAX_BACKUP})",
            file.display()
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| CarryError::io(file.display().to_string(), e))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(CarryError::Refused(format!(
            "the settings backup {} is not a gzip archive (tar.gz), as OpenWrt's preinit restores",
            file.display()
        )));
    }
    Ok(bytes)
}

/// Copy `from` (file, directory or symlink) to `to`, with its mode, owner and times.
fn copy_tree(from: &Path, meta: &std::fs::Metadata, to: &Path) -> Result<(), CarryError> {
    use std::os::unix::fs::MetadataExt;
    let err = |what: &str, e: std::io::Error| CarryError::io(format!("{what} {}", to.display()), e);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err("make the directory of", e))?;
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        let link = std::fs::read_link(from).map_err(|e| err("read link for", e))?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(link, to).map_err(|e| err("link", e))?;
    } else if kind.is_dir() {
        match std::fs::create_dir(to) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(err("make", e)),
            _ => {}
        }
        let entries =
            std::fs::read_dir(from).map_err(|e| CarryError::io(from.display().to_string(), e))?;
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p)
                .map_err(|e| CarryError::io(p.display().to_string(), e))?;
            copy_tree(&p, &m, &to.join(p.file_name().unwrap_or_default()))?;
        }
    } else if kind.is_file() {
        copy_file(from, to).map_err(|e| err("copy to", e))?;
    } else {
        tracing::info!(
            "{} is neither a file, a directory nor a link: not carried",
            from.display()
        );
        return Ok(());
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| err("chown", e))?;
    if !kind.is_symlink() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err("chmod", e))?;
        let times = [meta.accessed(), meta.modified()].map(|t| {
            let d = t
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            nix::sys::time::TimeSpec::from_duration(d)
        });
        nix::sys::stat::utimensat(
            None,
            to,
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| err("set the times of", e.into()))?;
    }
    Ok(())
}

/// Copy a file's bytes and sync them (a plain loop: `std::fs::copy` brings the kernel-copy
/// machinery, several KB of the router build, for files of a few KB).
fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut r = std::fs::File::open(from)?;
    let mut w = std::fs::File::create(to)?;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf)? {
            0 => break,
            n => w.write_all(&buf[..n])?,
        }
    }
    w.sync_all()
}
