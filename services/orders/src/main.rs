//! The orders service binary (to come).

fn main() {}
