//! Parsing a verified index document on both cores.
//!
//! A vendor with a long history publishes thousands of releases, and building the TOML tree
//! is most of the cost of a check. A large document is cut at a `[[release]]` header near
//! its middle and the two pieces are parsed at once, the second on a helper thread. The
//! result is the same as parsing the whole, or the whole is parsed instead:
//! - the head is parsed with a sentinel `[[release]]` table appended. That parses only if
//!   the cut was at the top level (not inside a string, an array or an inline table: a
//!   sentinel there is refused) and if `release` there can still be extended by headers
//!   (not a static array or a plain table);
//! - the tail starts with that header and may hold nothing but `[[release]]` tables and
//!   their sub-tables, which in the whole document belong to the same releases;
//! - any error in either piece is reported by parsing the whole document, so that its
//!   line numbers are the document's own.
//!
//! Only ever called on bytes whose signatures were verified.

use super::{IndexDoc, IndexMeta, ReleaseDoc};
use serde::Deserialize;

/// Below this size the whole document is parsed on the calling thread: a helper thread
/// would cost more than it saves.
const SPLIT_AT_LEAST: usize = 64 * 1024;

const HEADER: &str = "\n[[release]]";

/// Appended to the head: a release table no index holds (its fields are the empty
/// values that the release checks refuse), dropped again after the parse. It holds no
/// quote or bracket that could close a string, an array or an inline table left open.
const SENTINEL: &str = "[[release]]\nversion = \"0\"\nboards = []\nchannels = []\nurls = []\nsize = 0\nsha256 = \"\"\n";

/// A document or a piece of one: the head has the `[index]` table, the tail has none. (One
/// type for every parse, so that the router build holds one copy of the deserializer.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Piece {
    #[serde(default)]
    index: Option<IndexMeta>,
    #[serde(default)]
    release: Vec<ReleaseDoc>,
}

/// Parse a verified index document; the error is the TOML parser's, for the whole text.
pub(crate) fn document(text: &str) -> Result<IndexDoc, toml::de::Error> {
    let doc = match cut(text).and_then(|at| in_two(text, at)) {
        Some(doc) => doc,
        None => toml::from_str::<Piece>(text)?,
    };
    let index = doc
        .index
        .ok_or_else(|| <toml::de::Error as serde::de::Error>::missing_field("index"))?;
    Ok(IndexDoc {
        index,
        releases: doc.release,
    })
}

/// Where the tail starts: a line that is exactly a `[[release]]` header, at or after the
/// middle of a large document.
fn cut(text: &str) -> Option<usize> {
    if text.len() < SPLIT_AT_LEAST {
        return None;
    }
    let mid = text.len() / 2;
    let from = (mid..text.len()).find(|&i| text.is_char_boundary(i))?;
    text[from..]
        .match_indices(HEADER)
        .map(|(i, _)| from + i + 1)
        .find(|&at| {
            matches!(
                text.as_bytes().get(at + HEADER.len() - 1),
                Some(b'\n' | b'\r')
            )
        })
}

/// Both pieces parsed at once, or None when either does not parse as described above.
fn in_two(text: &str, at: usize) -> Option<Piece> {
    let tail_text = text[at..].to_owned();
    let helper =
        std::thread::Builder::new().spawn(move || toml::from_str::<Piece>(&tail_text).ok());
    let mut head_text = String::with_capacity(at + SENTINEL.len());
    head_text.push_str(&text[..at]);
    head_text.push_str(SENTINEL);
    let head = toml::from_str::<Piece>(&head_text).ok();
    let tail = match helper {
        Ok(h) => h.join().ok().flatten(),
        // No thread to be had: the tail is parsed here.
        Err(_) => toml::from_str::<Piece>(&text[at..]).ok(),
    };
    // Any `index` key in the tail, even a sub-table of it, would have to be a whole
    // `[index]` table there to parse at all.
    let (mut head, tail) = (head?, tail.filter(|t| t.index.is_none())?);
    head.release
        .pop()
        .filter(|r| r.size == 0 && r.urls.is_empty())?;
    head.release.extend(tail.release);
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[index]\nformat = 1\nversion = 3\nissued_at = \"2026-01-01T00:00:00Z\"\nexpires = \"2027-01-01T00:00:00Z\"\n";

    /// A release table; every seventh has sub-tables, every fifth a multi-line reason that
    /// holds a line looking like a release header.
    fn release(i: usize) -> String {
        let mut r = format!(
            "\n[[release]]\nversion = \"1.{i}\"\nboards = [\"b{}\"]\nchannels = [\"stable\"]\n\
             urls = [\"fw-{i}.img\"]\nsize = {}\nsha256 = \"{:064x}\"\n",
            i % 3,
            1000 + i,
            i
        );
        if i % 5 == 0 {
            r += "pulled = \"\"\"\nbroken\n[[release]]\nversion = \"9.9\"\n\"\"\"\n";
        }
        if i % 7 == 0 {
            r += "[release.rollout]\nstart = \"2026-01-01T00:00:00Z\"\nwaves = [{ after = \"1h\", percent = 10 }]\n";
            r += "[[release.part]]\nname = \"rootfs\"\n";
        }
        r
    }

    fn whole(text: &str) -> String {
        format!(
            "{:?}",
            toml::from_str::<IndexDoc>(text).map_err(|e| e.to_string())
        )
    }

    fn got(text: &str) -> String {
        format!("{:?}", document(text).map_err(|e| e.to_string()))
    }

    /// Each line that starts a release header, as a cut.
    fn cuts(text: &str) -> Vec<usize> {
        text.match_indices(HEADER).map(|(i, _)| i + 1).collect()
    }

    #[test]
    fn a_large_index_is_parsed_in_two_pieces_to_the_same_document() {
        let text: String = HEAD.to_string() + &(0..2000).map(release).collect::<String>();
        assert!(text.len() > SPLIT_AT_LEAST);
        let at = cut(&text).expect("a large index is cut");
        assert!(text[at..].starts_with("[[release]]\n"));
        assert!(in_two(&text, at).is_some(), "the cut is at the top level");
        assert_eq!(got(&text), whole(&text));
        let crlf = text.replace('\n', "\r\n");
        assert!(cut(&crlf).and_then(|at| in_two(&crlf, at)).is_some());
        assert_eq!(got(&crlf), whole(&crlf));
    }

    #[test]
    fn a_small_index_is_not_cut() {
        let text: String = HEAD.to_string() + &(0..20).map(release).collect::<String>();
        assert_eq!(cut(&text), None);
        assert_eq!(got(&text), whole(&text));
    }

    #[test]
    fn every_cut_gives_the_whole_documents_answer_or_none() {
        let text: String = HEAD.to_string() + &(0..60).map(release).collect::<String>();
        let (mut split, mut refused) = (0, 0);
        for at in cuts(&text) {
            match in_two(&text, at) {
                Some(doc) => {
                    split += 1;
                    let index = doc.index.expect("the head has the index table");
                    let doc = IndexDoc {
                        index,
                        releases: doc.release,
                    };
                    assert_eq!(
                        format!("{:?}", Ok::<_, String>(doc)),
                        whole(&text),
                        "cut at {at}"
                    );
                }
                // The header lines inside the multi-line reasons.
                None => refused += 1,
            }
        }
        assert_eq!((split, refused), (60, 12));
    }

    #[test]
    fn what_the_whole_document_refuses_is_refused_with_its_own_error() {
        let releases: String = (1..60).map(release).collect();
        // A static array cannot be extended by headers (the sentinel finds that out); a
        // plain table is no array.
        let inline = "release = [{ version = \"0.1\", boards = [], channels = [], urls = [], \
                      size = 1, sha256 = \"\" }]\n";
        for head in [
            format!("release = []\n{HEAD}"),
            format!("{inline}{HEAD}"),
            format!("{HEAD}[release]\nversion = \"0.1\"\n"),
        ] {
            let text = head + &releases;
            assert!(whole(&text).starts_with("Err"), "{}", whole(&text));
            for at in cuts(&text) {
                assert!(in_two(&text, at).is_none(), "cut at {at}");
            }
        }
        // An error in the tail names the line of the whole document.
        let mut text: String = HEAD.to_string() + &(0..2000).map(release).collect::<String>();
        text += "\n[[release]]\nversion = 12\n";
        let err = got(&text);
        assert!(err.starts_with("Err"), "{err}");
        assert_eq!(err, whole(&text));
        assert!(err.contains(&text.lines().count().to_string()), "{err}");
    }

    #[test]
    fn an_index_table_after_the_releases_is_parsed_whole() {
        let releases: String = (0..2000).map(release).collect();
        let text = releases.clone() + "\n" + HEAD;
        assert!(cut(&text).is_some_and(|at| in_two(&text, at).is_none()));
        assert!(got(&text).starts_with("Ok"));
        assert_eq!(got(&text), whole(&text));
        // A sub-table of the index, after the releases, is the index's.
        let text = HEAD.to_string() + &releases + "\n[index.security_floor]\nb1 = \"1.5\"\n";
        assert!(cut(&text).is_some_and(|at| in_two(&text, at).is_none()));
        assert!(got(&text).contains("b1"), "{}", got(&text));
        assert_eq!(got(&text), whole(&text));
        // No index table at all.
        let err = got(&releases);
        assert!(err.contains("missing field `index`"), "{err}");
    }
}
