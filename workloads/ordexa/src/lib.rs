//! The `ordexa` binary's command line, as a library so that tests can hold it against the
//! operator's pod specs (the configuration contract).

pub mod cli;
