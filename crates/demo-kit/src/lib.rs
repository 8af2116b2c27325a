//! Serving code shared by the demo services (filled in by issue 3).
