//! The users service (filled in by issue 3).
