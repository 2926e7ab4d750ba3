//! Reconciliation against the resident registry (see issue 4).
mod frames;
mod keys;
