//! Reconciliation against the resident registry (see issue 4).
