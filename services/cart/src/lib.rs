//! souk's cart service (being built).
