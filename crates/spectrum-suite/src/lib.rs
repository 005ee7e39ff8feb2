//! The task model of Spectrum Studio: tasks, sequences, distribution items and
//! validity rules, the importers that read them from files, and the built-in
//! suite generated from a seed.
//!
//! This crate knows nothing about models, SQL or user interfaces: it turns files
//! into validated values and values into files.

pub mod builtin;
pub mod import;
mod model;
pub mod paper;
pub mod validity;

pub use model::{
    DistributionItem, Message, Role, Sequence, Split, TaskDef, TaskKind, ValidityTask,
};
pub use spectrum_core::Rng;
pub use validity::ValidityRule;
