//! Conformance suites every adapter of the relay's ports must pass.
