//! The orders service (filled in by issue 3).
