//! The C ABI (see include/shoal.h).
