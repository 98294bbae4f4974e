//! The run modes the commands start: every canary once ([`once`], with its [`report`]s), held
//! by the [`daemon`], or against the in-process example feed ([`demo`]).

pub mod daemon;
pub mod demo;
pub mod once;
pub mod report;
