//! Reconciliation against the resident registry (see issue 4).
mod frames;
mod keys;
mod rules;
pub use rules::{Comparison, KeyPart, Mu, Rules, DEFAULT_RULES_TOML};
