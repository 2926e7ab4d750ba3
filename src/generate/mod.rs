//! Synthetic source generator (see issue 2).
