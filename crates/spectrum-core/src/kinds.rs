//! Closed sets stored as text: serde, TypeScript and SQLite all see the same
//! lowercase spelling (`as_str`), and a spelling this build does not know is
//! an error when read, never a silent default.

use serde::{Deserialize, Serialize};

macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} {text:?}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}

stored_enum! {
    /// What a run does.
    RunKind { Train => "train", Eval => "eval" }
}

stored_enum! {
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
