//! A table's keys read by hand, not by serde (each derived deserializer is several KB of the
//! router build): each getter takes its key out of the table, checking its type, and
//! [`Keys::done`] refuses any key left. The errors name the key.

use std::path::PathBuf;

/// What is wrong with one key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    Missing(&'static str),
    /// The key, what it should be, and what it is.
    Type(&'static str, &'static str, String),
    /// A key the table may not have, and the keys it may.
    Unknown(String, String),
}

impl KeyError {
    /// The key's full name (under `section`: `board`, `halt[0]`; "" at the top) and what is
    /// wrong with it.
    pub fn describe(self, section: &str) -> (String, String) {
        let name = |k: &str| match section {
            "" => k.to_string(),
            s => format!("{s}.{k}"),
        };
        match self {
            KeyError::Unknown(key, expected) => {
                (name(&key), format!("unknown field `{key}`, {expected}"))
            }
            KeyError::Missing(key) => (name(key), "missing".into()),
            KeyError::Type(key, what, found) => {
                (name(key), format!("invalid type: {found}, expected {what}"))
            }
        }
    }
}

/// A value as serde's messages describe it: `string "4k"`, ``integer `4` ``, …
pub fn found(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer `{i}`"),
        toml::Value::Float(f) => format!("floating point `{f}`"),
        toml::Value::Boolean(b) => format!("boolean `{b}`"),
        toml::Value::Datetime(d) => format!("datetime `{d}`"),
        toml::Value::Array(_) => "sequence".into(),
        toml::Value::Table(_) => "map".into(),
    }
}

pub struct Keys {
    table: toml::Table,
    /// The keys asked for so far, for the message of an unknown one.
    asked: Vec<&'static str>,
    /// The first key that must be there and is not.
    missing: Option<&'static str>,
}

impl Keys {
    pub fn new(table: toml::Table) -> Keys {
        Keys {
            table,
            asked: Vec::new(),
            missing: None,
        }
    }

    fn take<T>(
        &mut self,
        key: &'static str,
        what: &'static str,
        get: impl FnOnce(toml::Value) -> Result<T, toml::Value>,
    ) -> Result<Option<T>, KeyError> {
        self.asked.push(key);
        match self.table.remove(key) {
            None => Ok(None),
            Some(v) => get(v)
                .map(Some)
                .map_err(|v| KeyError::Type(key, what, found(&v))),
        }
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>, KeyError> {
        self.take(key, "a string", |v| match v {
            toml::Value::String(s) => Ok(s),
            v => Err(v),
        })
    }

    pub fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, KeyError> {
        self.take(key, "true or false", |v| match v {
            toml::Value::Boolean(b) => Ok(b),
            v => Err(v),
        })
    }

    pub fn path(&mut self, key: &'static str) -> Result<Option<PathBuf>, KeyError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    pub fn number(&mut self, key: &'static str) -> Result<Option<u64>, KeyError> {
        self.take(key, "a number (0 or more)", |v| match v {
            toml::Value::Integer(i) if i >= 0 => Ok(i as u64),
            v => Err(v),
        })
    }

    /// A number of bytes in memory (at most 4 GiB on a 32-bit router).
    pub fn size(&mut self, key: &'static str) -> Result<Option<usize>, KeyError> {
        self.take(key, "a size in bytes", |v| match v {
            toml::Value::Integer(i) if usize::try_from(i).is_ok() => Ok(i as usize),
            v => Err(v),
        })
    }

    pub fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>, KeyError> {
        self.take(key, "a sequence of strings", |v| match v {
            toml::Value::Array(a) if a.iter().all(|x| x.is_str()) => Ok(a
                .into_iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()),
            v => Err(v),
        })
    }

    /// An array of tables (`[[key]]`).
    pub fn tables(&mut self, key: &'static str) -> Result<Option<Vec<toml::Table>>, KeyError> {
        self.take(key, "a sequence of tables", |v| match v {
            toml::Value::Array(a) if a.iter().all(|x| x.is_table()) => Ok(a
                .into_iter()
                .filter_map(|x| match x {
                    toml::Value::Table(t) => Some(t),
                    _ => None,
                })
                .collect()),
            v => Err(v),
        })
    }

    /// A key that must be there: its value, or (noted for [`Keys::done`]) a default.
    pub fn need<T: Default>(&mut self, key: &'static str, v: Option<T>) -> T {
        if v.is_none() {
            self.missing.get_or_insert(key);
        }
        v.unwrap_or_default()
    }

    pub fn need_string(&mut self, key: &'static str) -> Result<String, KeyError> {
        let v = self.string(key)?;
        Ok(self.need(key, v))
    }

    pub fn need_path(&mut self, key: &'static str) -> Result<PathBuf, KeyError> {
        let v = self.path(key)?;
        Ok(self.need(key, v))
    }

    pub fn need_strings(&mut self, key: &'static str) -> Result<Vec<String>, KeyError> {
        let v = self.strings(key)?;
        Ok(self.need(key, v))
    }

    /// Refuse any key not asked for, then a key that must be there and is not.
    pub fn done(self) -> Result<(), KeyError> {
        match self.table.into_iter().next() {
            None => self.missing.map_or(Ok(()), |k| Err(KeyError::Missing(k))),
            Some((k, _)) => Err(KeyError::Unknown(
                k,
                match self.asked.as_slice() {
                    [] => "there are no fields".into(),
                    [one] => format!("expected `{one}`"),
                    all => format!(
                        "expected one of {}",
                        all.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Keys {
        Keys::new(text.parse().unwrap())
    }

    #[test]
    fn each_key_is_taken_once_typed_and_the_rest_refused() {
        let mut k = keys("a = \"x\"\nn = 5\nl = [\"p\", \"q\"]");
        assert_eq!(k.need_string("a"), Ok("x".into()));
        assert_eq!(k.number("n"), Ok(Some(5)));
        assert_eq!(k.strings("l"), Ok(Some(vec!["p".into(), "q".into()])));
        assert_eq!(k.path("absent"), Ok(None));
        assert_eq!(k.done(), Ok(()));

        let mut k = keys("n = -1\ns = 4\nl = [1]");
        assert_eq!(
            k.number("n"),
            Err(KeyError::Type(
                "n",
                "a number (0 or more)",
                "integer `-1`".into()
            ))
        );
        assert_eq!(
            k.string("s"),
            Err(KeyError::Type("s", "a string", "integer `4`".into()))
        );
        assert!(matches!(k.strings("l"), Err(KeyError::Type("l", _, f)) if f == "sequence"));

        // An unknown key is named before a missing one, with the keys there may be.
        let mut k = keys("bogus = true");
        assert_eq!(k.need_path("dir"), Ok(PathBuf::new()));
        assert_eq!(
            k.done(),
            Err(KeyError::Unknown("bogus".into(), "expected `dir`".into()))
        );
        let mut k = keys("");
        k.need_strings("command").unwrap();
        k.need_string("id").unwrap();
        assert_eq!(k.done(), Err(KeyError::Missing("command")));
    }
}
