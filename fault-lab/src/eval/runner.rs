//! Runner (filled in below).
