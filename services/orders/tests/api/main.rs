//! Orders integration tests (to come).
