//! Closed sets stored as text: serde, TypeScript and SQLite all see the same
//! lowercase spelling (`as_str`), and a spelling this build does not know is
//! an error when read, never a silent default.

use serde::{Deserialize, Serialize};

/// A closed set of values with one spelling each: what serde, SQLite,
/// TypeScript and the command line all read and write. Implemented by
/// [`closed_set!`](crate::closed_set); front ends list [`ClosedSet::ALL`] as
/// the choices (the CLI's value parser, the UI's menus come from bindings).
pub trait ClosedSet: Sized + Copy + Send + Sync + 'static {
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;

    /// The value spelled `text`, exactly.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }

    /// Every spelling, comma-separated, for messages.
    fn choices() -> String {
        Self::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Declares an enum of a closed set: each variant with its one spelling.
/// The calling crate depends on `serde` and `ts-rs`.
///
/// ```ignore
/// spectrum_core::closed_set! {
///     /// What a run does.
///     RunKind { Train => "train", Eval => "eval" }
/// }
/// ```
#[macro_export]
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize, ::ts_rs::TS)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $crate::ClosedSet for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = <$name as $crate::ClosedSet>::ALL;

            pub fn as_str(self) -> &'static str {
                <$name as $crate::ClosedSet>::as_str(self)
            }

            pub fn parse(text: &str) -> Option<$name> {
                <$name as $crate::ClosedSet>::parse(text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<$name, String> {
                $name::parse(text).ok_or_else(|| {
                    format!(
                        "no {} {text:?}; one of {}",
                        stringify!($name),
                        <$name as $crate::ClosedSet>::choices()
                    )
                })
            }
        }

        $crate::__closed_set_sql!($name);
    };
}

/// ToSql/FromSql of a closed set, when the store (feature `sql`) is built.
#[cfg(feature = "sql")]
#[doc(hidden)]
#[macro_export]
macro_rules! __closed_set_sql {
    ($name:ident) => {
        impl $crate::__rusqlite::types::ToSql for $name {
            fn to_sql(
                &self,
            ) -> $crate::__rusqlite::Result<$crate::__rusqlite::types::ToSqlOutput<'_>> {
                Ok($crate::__rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl $crate::__rusqlite::types::FromSql for $name {
            fn column_result(
                value: $crate::__rusqlite::types::ValueRef<'_>,
            ) -> $crate::__rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    $crate::__rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {text:?}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}

#[cfg(not(feature = "sql"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __closed_set_sql {
    ($name:ident) => {};
}

crate::closed_set! {
    /// What a run does.
    RunKind { Train => "train", Eval => "eval" }
}

crate::closed_set! {
    /// Where a run stands. A process killed mid-run leaves `Running`; the
    /// record's `updated_at` tells how long ago it was heard from.
    RunStatus {
        Running => "running",
        Finished => "finished",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl RunStatus {
    /// Finished, failed or cancelled: the run has stopped.
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }

    /// Stopped before its end (or still running, if its process died): a run
    /// that can be resumed.
    pub fn is_unfinished(self) -> bool {
        self != RunStatus::Finished
    }
}

crate::closed_set! {
    /// The evaluation families (METHOD.md §4): in-context steerability,
    /// distributional alignment, validity and diversity.
    Family { Steer => "steer", Dist => "dist", Valid => "valid" }
}

impl Family {
    /// What users type: the spellings and the long names (`steerability`,
    /// `distribution`, `validity`...), any case.
    pub fn named(text: &str) -> Option<Family> {
        match text.trim().to_ascii_lowercase().as_str() {
            "steer" | "steerability" => Some(Family::Steer),
            "dist" | "distribution" | "distributional" => Some(Family::Dist),
            "valid" | "validity" | "diversity" | "yield" => Some(Family::Valid),
            _ => None,
        }
    }
}

crate::closed_set! {
    /// What a registered model is: the architecture of a model whose weights
    /// are here, or a remote one (served elsewhere, scored over HTTP).
    ModelFamily {
        Llama => "llama",
        Qwen2 => "qwen2",
        Qwen3 => "qwen3",
        Gemma3 => "gemma3",
        /// Weights here in an architecture this build cannot name.
        Unknown => "unknown",
        Remote => "remote",
    }
}

impl ModelFamily {
    /// Whether its weights are here to be trained.
    pub fn is_local(self) -> bool {
        self != ModelFamily::Remote
    }
}

/// Where a model runs. Stored and shown as `cpu`, `cuda:N` or `metal`
/// (`Display`, [`DeviceSpec::parse`]); serde and TypeScript see the tagged
/// form (`"cpu"`, `{"cuda": 0}`, `"metal"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

impl DeviceSpec {
    /// `cpu`, `cuda` (device 0), `cuda:N` or `metal`.
    pub fn parse(text: &str) -> Option<DeviceSpec> {
        match text {
            "cpu" => Some(DeviceSpec::Cpu),
            "metal" => Some(DeviceSpec::Metal),
            "cuda" => Some(DeviceSpec::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda),
        }
    }
}

#[cfg(feature = "sql")]
impl rusqlite::types::ToSql for DeviceSpec {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_string()))
    }
}

#[cfg(feature = "sql")]
impl rusqlite::types::FromSql for DeviceSpec {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        DeviceSpec::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown device {text:?}").into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_read_back_as_they_are_written() {
        for d in [
            DeviceSpec::Cpu,
            DeviceSpec::Cuda(0),
            DeviceSpec::Cuda(3),
            DeviceSpec::Metal,
        ] {
            assert_eq!(DeviceSpec::parse(&d.to_string()), Some(d));
        }
        assert_eq!(DeviceSpec::parse("cuda"), Some(DeviceSpec::Cuda(0)));
        assert_eq!(DeviceSpec::parse("cuda(0)"), None);
        assert_eq!(DeviceSpec::parse("gpu"), None);
        assert_eq!(
            serde_json::to_string(&DeviceSpec::Cuda(1)).expect("json"),
            r#"{"cuda":1}"#
        );
    }

    #[test]
    fn every_spelling_reads_back_and_serde_agrees() {
        for kind in RunKind::ALL {
            assert_eq!(RunKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_string(kind).expect("json"),
                format!("\"{kind}\"")
            );
        }
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(RunStatus::parse("Running"), None);
        assert!(RunStatus::Cancelled.is_terminal() && RunStatus::Cancelled.is_unfinished());
        assert!(!RunStatus::Finished.is_unfinished());
    }
}
