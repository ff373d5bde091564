//! The fault lab's tests, in one test binary.
//!
//! Each file here used to be its own test binary, and each linked the lab and the control plane
//! again: 4 copies of ~280 MB filled CI's disk on a clean build (the linker died with SIGBUS).
//! One binary links them once; nextest still runs every test in its own process, so no test
//! sees state another left behind.

mod support;

mod acting;
mod safety;
mod scenarios;
mod supervisor_protocol;
