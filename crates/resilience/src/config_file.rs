//! Reading configurations from files (feature `serde`): durations as human strings and `"off"`
//! switches, shared by every config's `Deserialize`.
//!
//! Each config deserialises into a plain raw struct that refuses unknown fields, then runs the
//! same builder as code does, so a file can hold nothing a builder would refuse, and says so
//! with the builder's own message.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, Visitor};

/// A duration written as a number and a unit: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"` (also `"us"`,
/// `"ns"`). A bare number has no unit and is refused, so `timeout = 5` cannot mean 5 ms to one
/// reader and 5 s to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl HumanDuration {
    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} has no unit (ns, us, ms, s, m or h)"))?;
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} does not start with a number"))?;
        let seconds_per_unit = match unit.trim() {
            "ns" => 1e-9,
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "{other:?} in {text:?} is not a unit (ns, us, ms, s, m or h)"
                ));
            }
        };
        Duration::try_from_secs_f64(value * seconds_per_unit)
            .map_err(|_| format!("{text:?} is not a duration this program can hold"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\" or \"5s\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(text)
                    .map(HumanDuration)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A setting that is either `"off"` or a value (a number or a table), for the knobs whose
/// builders have a `without_*` method.
///
/// Read by hand rather than as an untagged enum: an untagged enum would replace the value's own
/// error (a builder's message) with "did not match any variant".
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Switch<T> {
    Off,
    On(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Switch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SwitchVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SwitchVisitor<T> {
            type Value = Switch<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"off\" or a value")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Switch<T>, E> {
                match text {
                    "off" => Ok(Switch::Off),
                    _ => T::deserialize(text.into_deserializer()).map(Switch::On),
                }
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Switch<T>, E> {
                T::deserialize(value.into_deserializer()).map(Switch::On)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Switch<T>, E> {
                T::deserialize(value.into_deserializer()).map(Switch::On)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Switch<T>, E> {
                T::deserialize(value.into_deserializer()).map(Switch::On)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Switch<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Switch::On)
            }
        }
        deserializer.deserialize_any(SwitchVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_with_units() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("10us", Duration::from_micros(10)),
        ];
        for (text, expected) in cases {
            assert_eq!(HumanDuration::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_durations_without_a_known_unit() {
        for text in ["5", "5 parsecs", "ms", "-1s", ""] {
            assert!(HumanDuration::parse(text).is_err(), "{text}");
        }
    }
}
