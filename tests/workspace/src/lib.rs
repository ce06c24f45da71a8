//! Workspace architecture checks live in tests/.
