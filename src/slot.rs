//! Typed slot identifiers for an A/B pair.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One half of an A/B pair. `!slot` is the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    /// Index into per-slot arrays.
    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

impl std::ops::Not for Slot {
    type Output = Slot;
    fn not(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid slot {0:?}: expected A or B")]
pub struct ParseSlotError(pub String);

impl FromStr for Slot {
    type Err = ParseSlotError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" | "a" => Ok(Slot::A),
            "B" | "b" => Ok(Slot::B),
            other => Err(ParseSlotError(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_slot_and_parse() {
        assert_eq!(!Slot::A, Slot::B);
        assert_eq!(!Slot::B, Slot::A);
        assert_eq!("b".parse::<Slot>().unwrap(), Slot::B);
        assert!("C".parse::<Slot>().is_err());
    }
}
