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

#[cfg(test)]
mod tests {
    use super::*;

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
