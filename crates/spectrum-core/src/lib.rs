//! The vocabulary every Spectrum crate shares, at the bottom of the crate
//! graph so that each library can speak it:
//!
//! - [`kinds`]: closed sets that are stored and shown ([`RunKind`],
//!   [`RunStatus`], [`DeviceSpec`]), one spelling in SQLite, serde and TypeScript;
//! - [`message`]: a sequence's [`Message`]s and their [`Role`]s, which tasks
//!   hold and templates render;
//! - [`rng`]: our seedable [`Rng`], the same numbers on every platform;
//! - [`problem`]: what kind of failure an error is ([`ErrorCode`]) and the way
//!   out of it as data ([`Fix`]), which each front end phrases in its own
//!   words: a command line in the CLI, a sentence and a button in the app.
//!   Libraries raise a [`Problem`] (or an error of their own that
//!   [`Explain`]s itself); no error message carries its fix as text.

pub mod kinds;
pub mod message;
pub mod problem;
pub mod rng;

pub use kinds::{ClosedSet, DeviceSpec, Family, ModelFamily, RunKind, RunStatus};

pub use message::{Message, Role};
pub use problem::{ErrorCode, Explain, Fix, Listing, Problem, chain};
pub use rng::Rng;
#[cfg(feature = "sql")]
#[doc(hidden)]
pub use rusqlite as __rusqlite;
