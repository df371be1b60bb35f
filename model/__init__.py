"""Runtime library of tsur: what inference needs and nothing more."""
