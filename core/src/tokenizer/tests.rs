//! Unit tests on hand-built vocabularies.
