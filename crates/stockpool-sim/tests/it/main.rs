//! The simulator's behaviour: one test binary.
//!
//! `accounting` pins the counters on tiny replayed scenarios worked out by hand;
//! `determinism` checks that a seed fixes the report byte for byte; `replay` covers the
//! order-history CSV; `scenarios` checks the shipped scenarios' claims; `tidy` keeps every
//! file's opening comment.

mod accounting;
mod determinism;
mod replay;
mod scenarios;
mod support;
mod tidy;
