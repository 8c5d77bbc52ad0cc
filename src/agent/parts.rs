//! Writing a release's parts besides its boot image, each into its target of the slot being
//! installed. A part is streamed from its sources while hashing, checked against the index,
//! read back and verified, like the boot image; a part that the target already holds (it
//! reads back to the signed hash: an install that was cut off after it, or a part that did
//! not change) is not written again. Parts restart from their first byte: only the boot
//! image, which is written last, continues from a checkpoint.

use super::Agent;
use crate::error::{Error, Result};
use crate::fetch::{resolve, FetchError, SinkOr};
use crate::flash::{self, Expected, FlashError};
use crate::index::part::Part;
use crate::index::Release;
use crate::slot::Slot;
use crate::state::PersistedState;

impl Agent {
    /// Write `part` of `release` into its target of slot `target` and verify it. `before`:
    /// the bytes of the install written before this part (for the progress shown).
    pub(super) async fn write_part(
        &self,
        st: &mut PersistedState,
        release: &Release,
        part: &Part,
        target: Slot,
        base_url: &str,
        before: u64,
    ) -> Result<()> {
        let dev = self.target_of(target, &part.into())?;
        let exp = Expected {
            size: part.size,
            sha256: part.sha256,
        };
        let total = release.size + release.parts.iter().map(|p| p.size).sum::<u64>();
        let progress = |at: u64| {
            if let Some(p) = &self.progress {
                p(&release.version, before + at, total)
            }
        };
        if flash::verify_existing(dev, &exp).is_ok() {
            tracing::info!(
                "part {:?} of {} is in {} already (it reads back to the signed hash): not written again",
                part.name,
                release.version,
                dev.describe()
            );
            progress(part.size);
            return Ok(());
        }
        tracing::info!(
            "writing part {:?} of {} ({} bytes) into {}",
            part.name,
            release.version,
            part.size,
            dev.describe()
        );
        let sha = hex::encode(part.sha256);
        let mut errors = Vec::new();
        for url in &part.urls {
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
            let mut writer = flash::begin(dev, &exp)?;
            progress(0);
            let got = self
                .fetcher
                .fetch_from(&url, 0, part.size, &mut |chunk: &[u8]| {
                    writer.write(chunk)?;
                    progress(writer.written());
                    Ok::<(), Error>(())
                })
                .await;
            match got {
                Ok(_) => {}
                Err(SinkOr::Sink(e)) => {
                    if matches!(e, Error::Flash(FlashError::Oversize { .. })) {
                        st.note_bad_source(&sha, url.as_str());
                    }
                    return Err(e);
                }
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
            let written = writer.finish(&exp).inspect_err(|e| {
                if matches!(e, FlashError::Verify { .. }) {
                    st.note_bad_source(&sha, url.as_str());
                }
            })?;
            written.verify(dev, &exp)?;
            crate::failpoint::hit("install-part-written");
            return Ok(());
        }
        Err(FetchError::AllMirrorsFailed {
            version: format!("{} (part {:?})", release.version, part.name),
            errors: errors.join("; "),
        }
        .into())
    }
}
