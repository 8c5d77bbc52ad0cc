//! Streaming a file into ranges of the slot. A container release (OpenWrt's sysupgrade
//! image: a tar with the kernel and the root file system, and a metadata trailer) is
//! streamed once, and the signed index says where in it the boot image and each part are,
//! so nothing of the file is parsed: the bytes of each range go to their own writer (the
//! boot image to the slot, each part to its target), every other byte is only hashed. The
//! boot image's head is invalidated first and written last, after every part was checked
//! against its hash, and the whole file must match the signed hash too. A container is not
//! resumed from a checkpoint: an interrupted transfer starts over (its parts are rewritten).
//! A part that is a file of its own is the same stream with one range: the whole file.

use super::update::expected;
use super::Agent;
use crate::error::{Error, Result};
use crate::fetch::{resolve, FetchError, SinkOr};
use crate::flash::{self, Expected, FlashError, SlotDevice, SlotWriter, VerifiedSlot};
use crate::index::Release;
use crate::slot::Slot;
use crate::state::PersistedState;
use sha2::{Digest, Sha256};

/// One range of a file and where its bytes go.
pub(super) struct Route<'a> {
    pub offset: u64,
    pub size: u64,
    pub dev: &'a dyn SlotDevice,
    pub expected: Expected,
    pub writer: Option<SlotWriter<'a>>,
}

/// A file to stream: what it is (for messages), its sources, size and hash.
pub(super) struct Stream<'a> {
    pub version: &'a crate::version::Version,
    /// What it is, for messages: the release, or one of its parts.
    pub what: String,
    pub urls: &'a [String],
    pub size: u64,
    pub sha256: [u8; 32],
    /// The bytes of the install written before this file (for the progress shown), and in
    /// all.
    pub before: u64,
    pub total: u64,
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
        let file = Stream {
            version: &release.version,
            what: release.version.to_string(),
            urls: &release.urls,
            size: release.size,
            sha256: release.sha256,
            before: 0,
            total: release.size,
        };
        let url = self.stream_routes(st, &file, base_url, &mut routes).await?;
        // Every part checked and read back, then the boot image completed (its head
        // written last) and read back.
        let mut routes = routes.into_iter();
        let boot_route = routes.next().expect("the boot image's route");
        for r in routes {
            self.finish_route(st, &file, &url, r)?;
        }
        crate::failpoint::hit("install-part-written");
        let written = boot_route.writer.expect("begun").finish(&exp);
        let written = written.inspect_err(|e| bad_range(st, &file, &url, e))?;
        crate::failpoint::hit("install-written");
        let verified = written.verify(dev, &exp)?;
        self.check_extents_written(st, release, target, &url)?;
        Ok(verified)
    }

    /// Complete a route's writer (its bytes checked against its own hash) and read its
    /// device back.
    pub(super) fn finish_route(
        &self,
        st: &mut PersistedState,
        file: &Stream<'_>,
        url: &str,
        r: Route<'_>,
    ) -> Result<()> {
        let written = r.writer.expect("begun").finish(&r.expected);
        let written = written.inspect_err(|e| bad_range(st, file, url, e))?;
        written.verify(r.dev, &r.expected)?;
        Ok(())
    }

    /// Stream `file` from the first of its sources that delivers it whole, each route's
    /// writer begun anew for each source (its device invalidated first, in the order of the
    /// routes); returns the source it came from. The writers are left to be finished.
    pub(super) async fn stream_routes(
        &self,
        st: &mut PersistedState,
        file: &Stream<'_>,
        base_url: &str,
        routes: &mut [Route<'_>],
    ) -> Result<String> {
        let sha = hex::encode(file.sha256);
        let mut errors = Vec::new();
        for url in file.urls {
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
            for r in routes.iter_mut() {
                r.writer = Some(flash::begin(r.dev, &r.expected)?);
            }
            let mut hasher = Sha256::new();
            let mut at = 0u64;
            let half = file.size / 2;
            let got = self
                .fetcher
                .fetch_from(&url, 0, file.size, &mut |chunk: &[u8]| {
                    hasher.update(chunk);
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
                    if let Some(p) = &self.progress {
                        p(file.version, file.before + at, file.total);
                    }
                    Ok::<(), Error>(())
                })
                .await;
            if let Err(e) = got {
                errors.push(transfer_failed(st, &sha, url.as_str(), e)?);
                continue;
            }
            let got: [u8; 32] = hasher.finalize().into();
            if at != file.size || got != file.sha256 {
                st.note_bad_source(&sha, url.as_str());
                return Err(FlashError::Verify {
                    slot: routes[0].dev.slot(),
                    what: format!(
                        "the downloaded file of {} is {at} bytes with sha256 {}; the index states {} bytes with sha256 {}",
                        file.what,
                        hex::encode(got),
                        file.size,
                        hex::encode(file.sha256)
                    ),
                }
                .into());
            }
            return Ok(url.to_string());
        }
        Err(FetchError::AllMirrorsFailed {
            version: file.what.clone(),
            errors: errors.join("; "),
        }
        .into())
    }
}

/// How a transfer from `url` that did not complete ended: an error that ends the install
/// (the sink failed, or the source streamed other bytes than the signed ones, which is
/// counted against it), or the message of a transfer that broke off (the next source, or
/// the next attempt, goes on).
pub(super) fn transfer_failed(
    st: &mut PersistedState,
    sha: &str,
    url: &str,
    e: SinkOr<Error>,
) -> Result<String> {
    match e {
        SinkOr::Sink(e) => {
            if matches!(e, Error::Flash(FlashError::Oversize { .. })) {
                st.note_bad_source(sha, url);
            }
            Err(e)
        }
        SinkOr::Fetch(e) if e.is_verification() => {
            st.note_bad_source(sha, url);
            Err(e.into())
        }
        SinkOr::Fetch(e) => {
            tracing::warn!("{e}");
            Ok(e.to_string())
        }
    }
}

/// A range whose bytes do not match its own signed hash, in a file that matched its own:
/// the index contradicts itself; counted against the source, so the release is refused
/// before the slot is written again after a few tries.
fn bad_range(st: &mut PersistedState, file: &Stream<'_>, url: &str, e: &FlashError) {
    if matches!(e, FlashError::Verify { .. }) {
        st.note_bad_source(&hex::encode(file.sha256), url);
    }
}
