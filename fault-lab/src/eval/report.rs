//! Reports (filled in below).
