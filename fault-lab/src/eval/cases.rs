//! Replayable cases (filled in below).
