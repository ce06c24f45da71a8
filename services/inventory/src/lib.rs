//! souk's inventory service (being built).
