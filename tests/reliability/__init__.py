"""The reliability battery: guarantees proven under load, crashes, tampering and bad input."""
