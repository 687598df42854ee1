//! Test support shared by the integration tests: the synthetic reference model and its host.
#![allow(dead_code)]

pub mod synthetic;
