//! argen-core
