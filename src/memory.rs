//! The long-running daemon's memory: its code and read-only data are mapped a page at a
//! time, as it runs them, and handed back to the kernel while it idles between checks.
//!
//! A page fault on a file mapping normally maps the pages around the faulting one as well
//! (the kernel's fault-around, 64 KiB), so a daemon that ran a little of each part of its
//! binary once (parsing the config, the index, TLS, the HTTP client) keeps most of the
//! binary and of the C library resident, although it idles in a few of their pages. Marking
//! those mappings `MADV_RANDOM` turns fault-around and readahead off for them: only the
//! pages the daemon executes or reads become part of it. The page cache (and so the reads
//! from flash) is the same; only what the process maps changes.
//!
//! Between checks (hours apart) the daemon runs almost none of that code: before it sleeps
//! it asks the kernel to reclaim those pages (`MADV_PAGEOUT`); clean pages of a file are
//! dropped (read again from the file when next run, once per check), pages that other
//! processes map or that were written (relocated constants) stay. Its idle footprint is
//! then its heap and the few pages its idle loop runs.

/// Mark every read-only file mapping of this process (`r-xp` code, `r--p` constants) for
/// page-at-a-time faults. Best effort, as both of these: a failure leaves the mappings as
/// they were.
pub fn map_code_lazily() {
    #[cfg(target_os = "linux")]
    advise_file_mappings(nix::libc::MADV_RANDOM);
}

/// Let the kernel reclaim the pages of this process's read-only file mappings now.
pub fn page_out_code() {
    #[cfg(target_os = "linux")]
    advise_file_mappings(nix::libc::MADV_PAGEOUT);
}

#[cfg(target_os = "linux")]
fn advise_file_mappings(advice: nix::libc::c_int) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let file = fields.nth(3).is_some_and(|p| p.starts_with('/'));
        if !file || !perms.starts_with('r') || perms.as_bytes().get(1) != Some(&b'-') {
            continue;
        }
        let Some((Ok(start), Ok(end))) = range
            .split_once('-')
            .map(|(a, b)| (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)))
        else {
            continue;
        };
        // SAFETY: advice on a range this process maps (from its own maps file); neither
        // advice changes what the pages hold, only when they are read in or reclaimed.
        unsafe {
            nix::libc::madvise(start as *mut nix::libc::c_void, end - start, advice);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn the_code_that_ran_is_handed_back() {
        super::map_code_lazily();
        let before = rss_file_kib();
        super::page_out_code();
        let after = rss_file_kib();
        // This test binary's own pages are mapped by this process alone: they go.
        assert!(
            after < before,
            "RssFile {before} KiB before, {after} KiB after"
        );
    }
}
