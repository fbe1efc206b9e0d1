//! relay-edge: the relay on an instrument workstation.

fn main() {}
