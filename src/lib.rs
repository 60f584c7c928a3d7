//! barrierlab: a laboratory for garbage-collector write barriers on Linux.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod sys;

pub use error::{Error, Result};
pub mod probe;
