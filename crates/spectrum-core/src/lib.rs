//! The vocabulary every Spectrum crate shares, at the bottom of the crate
//! graph so that each library can speak it:
//!
//! - [`kinds`]: closed sets that are stored and shown ([`RunKind`],
//!   [`RunStatus`], [`DeviceSpec`]), one spelling in SQLite, serde and TypeScript;
//! - [`problem`]: what kind of failure an error is ([`ErrorCode`]) and the way
//!   out of it as data ([`Fix`]), which each front end phrases in its own
//!   words: a command line in the CLI, a sentence and a button in the app.
//!   Libraries raise a [`Problem`] (or an error of their own that
//!   [`Explain`]s itself); no error message carries its fix as text.

pub mod kinds;
pub mod problem;

pub use kinds::{DeviceSpec, RunKind, RunStatus};
pub use problem::{ErrorCode, Explain, Fix, Listing, Problem, chain};
