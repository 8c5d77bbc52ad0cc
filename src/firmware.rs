//! The firmware header: a small text block at the start of a slot image that says what the
//! image is (board, version, build time) so the running version can be read from the slot.
//!
//! ```text
//! FWGUARD-FIRMWARE 1
//! board=sim
//! version=1.1
//! build_time=1763800000
//! payload_size=1048576
//! payload_sha256=<64 hex>
//! x-...=...            (free-form extra keys, e.g. for the simulated board)
//! ```
//! The text ends with a NUL; the block is `HEADER_LEN` bytes; the payload follows it.

use crate::version::Version;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const MAGIC: &str = "FWGUARD-FIRMWARE 1";
pub const HEADER_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub board: String,
    pub version: Version,
    /// Seconds since the Unix epoch when the firmware was built.
    pub build_time: u64,
    pub payload_size: u64,
    pub payload_sha256: [u8; 32],
    /// Extra `x-` keys, kept in order.
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("no firmware header (the slot is empty, erased or holds something else)")]
    NoMagic,
    #[error("header is not terminated inside its {HEADER_LEN} bytes")]
    Unterminated,
    #[error("header line {0:?} is not key=value")]
    BadLine(String),
    #[error("header field {0} is missing")]
    Missing(&'static str),
    #[error("header field {key} = {value:?} is invalid")]
    BadField { key: String, value: String },
    #[error("header does not fit in {HEADER_LEN} bytes")]
    TooLong,
}

impl Header {
    pub fn image_size(&self) -> u64 {
        HEADER_LEN as u64 + self.payload_size
    }

    pub fn parse(block: &[u8]) -> Result<Header, HeaderError> {
        let block = &block[..block.len().min(HEADER_LEN)];
        if !block.starts_with(MAGIC.as_bytes()) {
            return Err(HeaderError::NoMagic);
        }
        let end = block
            .iter()
            .position(|&b| b == 0)
            .ok_or(HeaderError::Unterminated)?;
        let text = std::str::from_utf8(&block[..end]).map_err(|_| HeaderError::NoMagic)?;
        let mut fields = BTreeMap::new();
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| HeaderError::BadLine(line.to_string()))?;
            fields.insert(k.to_string(), v.to_string());
        }
        let mut take = |k: &'static str| fields.remove(k).ok_or(HeaderError::Missing(k));
        let bad = |key: &str, value: &str| HeaderError::BadField {
            key: key.to_string(),
            value: value.to_string(),
        };
        let board = take("board")?;
        let version_s = take("version")?;
        let build_s = take("build_time")?;
        let size_s = take("payload_size")?;
        let sha_s = take("payload_sha256")?;
        let version = version_s.parse().map_err(|_| bad("version", &version_s))?;
        let build_time = build_s.parse().map_err(|_| bad("build_time", &build_s))?;
        let payload_size = size_s.parse().map_err(|_| bad("payload_size", &size_s))?;
        let mut payload_sha256 = [0u8; 32];
        hex::decode_to_slice(&sha_s, &mut payload_sha256)
            .map_err(|_| bad("payload_sha256", &sha_s))?;
        if board.is_empty() {
            return Err(bad("board", &board));
        }
        if let Some(k) = fields.keys().find(|k| !k.starts_with("x-")) {
            return Err(bad(k, &fields[k]));
        }
        Ok(Header {
            board,
            version,
            build_time,
            payload_size,
            payload_sha256,
            extra: fields,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, HeaderError> {
        let mut text = format!(
            "{MAGIC}\nboard={}\nversion={}\nbuild_time={}\npayload_size={}\npayload_sha256={}\n",
            self.board,
            self.version,
            self.build_time,
            self.payload_size,
            hex::encode(self.payload_sha256)
        );
        for (k, v) in &self.extra {
            text.push_str(&format!("{k}={v}\n"));
        }
        if text.len() >= HEADER_LEN {
            return Err(HeaderError::TooLong);
        }
        let mut out = text.into_bytes();
        out.resize(HEADER_LEN, 0);
        Ok(out)
    }
}

/// Build a complete image: header plus payload.
pub fn build_image(
    board: &str,
    version: &Version,
    build_time: u64,
    payload: &[u8],
    extra: &[(&str, &str)],
) -> Result<Vec<u8>, HeaderError> {
    let header = Header {
        board: board.to_string(),
        version: version.clone(),
        build_time,
        payload_size: payload.len() as u64,
        payload_sha256: Sha256::digest(payload).into(),
        extra: extra
            .iter()
            .map(|(k, v)| (format!("x-{k}"), v.to_string()))
            .collect(),
    };
    let mut img = header.encode()?;
    img.extend_from_slice(payload);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let img = build_image(
            "sim",
            &"1.2".parse().unwrap(),
            42,
            b"payload",
            &[("sim-wan", "down")],
        )
        .unwrap();
        let h = Header::parse(&img).unwrap();
        assert_eq!(h.board, "sim");
        assert_eq!(h.version.as_str(), "1.2");
        assert_eq!(h.image_size(), img.len() as u64);
        assert_eq!(h.extra.get("x-sim-wan").map(String::as_str), Some("down"));
    }

    #[test]
    fn rejects_erased_and_unknown_fields() {
        assert_eq!(Header::parse(&[0u8; 512]), Err(HeaderError::NoMagic));
        assert_eq!(Header::parse(&[0xffu8; 512]), Err(HeaderError::NoMagic));
        let img = build_image("sim", &"1.0".parse().unwrap(), 1, b"x", &[]).unwrap();
        let end = img.iter().position(|&b| b == 0).unwrap();
        let mut bogus = img[..end].to_vec();
        bogus.extend_from_slice(b"bogus=1\n");
        bogus.resize(HEADER_LEN, 0);
        assert_eq!(
            Header::parse(&bogus),
            Err(HeaderError::BadField {
                key: "bogus".into(),
                value: "1".into()
            })
        );
    }
}
