//! The `astaire` command's edges: its arguments, the original command
//! lines, what it prints, and the process it sets up.

pub mod args;
pub mod legacy;
pub mod migrate;
pub mod output;
pub mod process;
