//! Running Keelson's pipeline: one pass (load -> render -> read live -> plan -> roll out -> record) and,
//! built on it, the long-running loop.

pub mod pass;

pub use pass::{PassError, PassOutcome, PassSettings, Prepared, execute, prepare, prepare_with};
pub mod clock;
pub mod control;
pub mod daemon;
pub mod drift;
pub mod leader;

pub use daemon::{Backoff, Daemon, DaemonConfig, DaemonError};
