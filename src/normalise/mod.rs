//! Field normalisers (see issue 3).
