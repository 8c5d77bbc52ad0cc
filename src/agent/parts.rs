//! Writing a release's parts besides its boot image, each into its target of the slot being
//! installed. A part is streamed from its sources while hashing, checked against the index,
//! read back and verified, like the boot image; a part that the target already holds (it
//! reads back to the signed hash: an install that was cut off after it, or a part that did
//! not change) is not written again. Parts restart from their first byte: only the boot
//! image, which is written last, continues from a checkpoint.

use super::Agent;
use crate::error::Result;
use crate::flash::{self, Expected};
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
        if !dev.always_written() && flash::verify_existing(dev, &exp).is_ok() {
            tracing::info!(
                "part {:?} of {} is in {} already (it reads back to the signed hash): not written again",
                part.name,
                release.version,
                dev.describe()
            );
            if let Some(p) = &self.progress {
                p(&release.version, before + part.size, total)
            }
            return Ok(());
        }
        tracing::info!(
            "writing part {:?} of {} ({} bytes) into {}",
            part.name,
            release.version,
            part.size,
            dev.describe()
        );
        let file = super::container::Stream {
            version: &release.version,
            what: format!("{} (part {:?})", release.version, part.name),
            urls: &part.urls,
            size: part.size,
            sha256: part.sha256,
            before,
            total,
        };
        let mut routes = [super::container::Route {
            offset: 0,
            size: part.size,
            dev,
            expected: exp,
            writer: None,
        }];
        let url = self.stream_routes(st, &file, base_url, &mut routes).await?;
        let [route] = routes;
        self.finish_route(st, &file, &url, route)?;
        crate::failpoint::hit("install-part-written");
        Ok(())
    }
}
