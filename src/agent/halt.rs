//! Taking in `halt.toml`, published next to the index by the vendor's fleet service and
//! signed by the trust root's halt keys (`index::halt`). A halt file refused (badly signed,
//! replayed, expired) or unreachable is logged and leaves the last accepted one in force until
//! it expires: nothing a halt file says can make a device install anything, so a check goes on
//! without it.

use super::Agent;
use crate::fetch::resolve;
use crate::index::halt::{UntrustedHalt, HALT_FILE, MAX_HALT_BYTES};
use crate::index::root::TrustRoot;
use crate::state::{Note, PersistedState};

impl Agent {
    /// Fetch and check the halt file next to `index_url` at trusted time `now`, when `root`
    /// has halt keys. Returns whether `st` changed (a newer halt file was accepted).
    pub(super) async fn take_halt(
        &self,
        st: &mut PersistedState,
        root: &TrustRoot,
        index_url: &str,
        now: u64,
    ) -> bool {
        let Some(keys) = &root.halt else {
            return false;
        };
        let url = match resolve(index_url, HALT_FILE) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("{HALT_FILE}: {e}");
                return false;
            }
        };
        let kept = "the halt accepted before stays in force until it expires";
        let untrusted = match self.fetch_signed(&url, MAX_HALT_BYTES).await {
            Ok(Some((bytes, signatures))) => UntrustedHalt { bytes, signatures },
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!("{url}: {e}; {kept}");
                return false;
            }
        };
        let last = st.halts();
        match untrusted.verify(keys, root.version, last.as_ref(), now) {
            Ok(h) if last.as_ref() == Some(&h) => false,
            Ok(h) => {
                tracing::info!("accepted {HALT_FILE} version {}", h.version);
                let facts = self.facts(st);
                // The bytes verified as UTF-8 text.
                let text = String::from_utf8_lossy(&untrusted.bytes).into_owned();
                st.note(
                    Note::HaltAccepted {
                        halts: Box::new(h),
                        text,
                    },
                    &facts,
                );
                true
            }
            Err(e) => {
                tracing::warn!("refused {url}: {e}; {kept}");
                false
            }
        }
    }
}
