//! The stockpool binary's integration tests: one test binary, one module per feature.

mod bench;
mod cli;
mod csv_import;
mod e2e;
mod nodes;
mod sync_crash;
mod tidy;
