//! Installing a container release (OpenWrt's sysupgrade image: a tar with the kernel and the
//! root file system, and a metadata trailer): the file is streamed once, and the signed
//! index says where in it the boot image and each part are, so nothing of the file is
//! parsed: the bytes of each range go to their own writer (the boot image to the slot, each
//! part to its target), every other byte is only hashed. The boot image's head is
//! invalidated first and written last, after every part was checked against its hash, and
//! the whole file must match the signed hash too. A container is not resumed from a
//! checkpoint: an interrupted transfer starts over (its parts are rewritten).

use super::update::expected;
use super::Agent;
use crate::error::{Error, Result};
use crate::fetch::{resolve, FetchError, SinkOr};
use crate::flash::{self, Expected, FlashError, SlotDevice, SlotWriter, VerifiedSlot};
use crate::index::Release;
use crate::slot::Slot;
use crate::state::PersistedState;
use sha2::{Digest, Sha256};

/// One range of the file and where its bytes go.
struct Route<'a> {
    offset: u64,
    size: u64,
    dev: &'a dyn SlotDevice,
    expected: Expected,
    writer: Option<SlotWriter<'a>>,
}

impl Agent {
    /// Stream container `release` into slot `target`: its boot image into the slot, its
    /// parts into their targets; then read every one back.
    pub(super) async fn write_container(
        &self,
        st: &mut PersistedState,
        release: &Release,
        target: Slot,
        base_url: &str,
    ) -> Result<VerifiedSlot> {
        let boot = release.boot.as_ref().expect("a container release");
        let dev = self.board.slot(target);
        let exp = expected(release);
        let mut routes = vec![Route {
            offset: boot.offset,
            size: boot.size,
            dev,
            expected: exp.clone(),
            writer: None,
        }];
        for p in &release.parts {
            routes.push(Route {
                offset: p.offset.expect("a container's parts are ranges of it"),
                size: p.size,
                dev: self.target_of(target, &p.into())?,
                expected: Expected {
                    size: p.size,
                    sha256: p.sha256,
                },
                writer: None,
            });
        }
        let sha = hex::encode(release.sha256);
        let mut errors = Vec::new();
        for url in &release.urls {
            let url = match resolve(base_url, url) {
                Ok(u) => u,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            if st.source_given_up(&sha, url.as_str()) {
                errors.push(format!(
                    "{url}: skipped, it streamed a wrong image {} times",
                    crate::state::MAX_BAD_STREAMS
                ));
                continue;
            }
            // The boot image first: its head is invalidated before any part is written.
            for r in routes.iter_mut() {
                r.writer = Some(flash::begin(r.dev, &r.expected)?);
            }
            let mut file = Sha256::new();
            let mut at = 0u64;
            let half = release.size / 2;
            let progress = |done: u64| {
                if let Some(p) = &self.progress {
                    p(&release.version, done, release.size)
                }
            };
            let got = self
                .fetcher
                .fetch_from(&url, 0, release.size, &mut |chunk: &[u8]| {
                    file.update(chunk);
                    let end = at + chunk.len() as u64;
                    for r in routes.iter_mut() {
                        let (from, to) = (r.offset.max(at), (r.offset + r.size).min(end));
                        if from < to {
                            let piece = &chunk[(from - at) as usize..(to - at) as usize];
                            r.writer.as_mut().expect("begun").write(piece)?;
                        }
                    }
                    if at < half && end >= half {
                        crate::failpoint::hit("install-mid-write");
                    }
                    at = end;
                    progress(at);
                    Ok::<(), Error>(())
                })
                .await;
            match got {
                Ok(_) => {}
                Err(SinkOr::Sink(e)) => return Err(e),
                Err(SinkOr::Fetch(e)) if e.is_verification() => {
                    st.note_bad_source(&sha, url.as_str());
                    return Err(e.into());
                }
                Err(SinkOr::Fetch(e)) => {
                    tracing::warn!("{e}");
                    errors.push(e.to_string());
                    continue;
                }
            }
            let file: [u8; 32] = file.finalize().into();
            if at != release.size || file != release.sha256 {
                st.note_bad_source(&sha, url.as_str());
                return Err(FlashError::Verify {
                    slot: target,
                    what: format!(
                        "the downloaded file is {at} bytes with sha256 {}; the index states {} bytes with sha256 {}",
                        hex::encode(file),
                        release.size,
                        hex::encode(release.sha256)
                    ),
                }
                .into());
            }
            // Every part checked and read back, then the boot image completed (its head
            // written last) and read back.
            let mut routes = routes.into_iter();
            let boot_route = routes.next().expect("the boot image's route");
            for r in routes {
                let written = r.writer.expect("begun").finish(&r.expected)?;
                written.verify(r.dev, &r.expected)?;
            }
            crate::failpoint::hit("install-part-written");
            let written = boot_route.writer.expect("begun").finish(&exp)?;
            crate::failpoint::hit("install-written");
            let verified = written.verify(dev, &exp)?;
            self.check_extents_written(st, release, target, url.as_str())?;
            return Ok(verified);
        }
        Err(FetchError::AllMirrorsFailed {
            version: release.version.to_string(),
            errors: errors.join("; "),
        }
        .into())
    }
}
