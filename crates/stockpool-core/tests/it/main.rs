//! The core's behaviour, in the words of SPEC sections 2 to 5: one test binary.

mod bom;
mod buffer;
mod orders;
mod props;
mod publish;
mod push;
mod rules;
mod support;
mod tidy;
mod velocity;
