//! vaxarc: migrate Japanese vaccination records from legacy exports into an encrypted,
//! self-describing archive; look them up; purge them provably.
//!
//! The pipeline, one module per stage, each with a pure core and a thin I/O shell:
//! [`ingest`] (decode, split, map columns by a layout in `schemas/sources/`) →
//! [`normalise`] (dates, widths, kana, kanji variants, codes, check digits) →
//! [`reconcile`] (link to the resident registry, merge doses recorded twice) →
//! [`archive`] (Parquet → age, manifest, verify). [`generate`] makes synthetic sources
//! with ground truth.

pub mod allocator;
pub mod archive;
pub mod audit;
pub mod catalogue;
pub mod cli;
pub mod commands;
pub mod exit_codes;
#[doc(hidden)]
pub mod fuzz;
pub mod generate;
pub mod ingest;
pub mod keys;
pub mod layout;
pub mod lookup;
pub mod merkle;
pub mod normalise;
pub mod pipeline;
pub mod progress;
pub mod purge;
pub mod reconcile;
pub mod record;
pub mod report;
pub mod schema;
pub mod spill;
