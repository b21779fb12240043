//! Durations in node configuration files, written as Go durations (`10s`,
//! `2m30s`), as Fabric writes them: `#[serde(with = "weft_node::duration")]`.

use serde::Deserialize;
use std::time::Duration;

pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    weft_protoutil::parse_duration(&text).map_err(serde::de::Error::custom)
}
