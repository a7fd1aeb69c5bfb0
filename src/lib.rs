//! rinit as a library: the binary (`main.rs`) is a thin entry point over
//! these modules, and the fuzz targets (`fuzz/`) drive the parsers of
//! hostile input (config, HTTP) through the same code PID 1 runs.

pub mod cli;
pub mod config;
pub mod core;
pub mod health;
pub mod io;
pub mod os;
pub mod runtime;
