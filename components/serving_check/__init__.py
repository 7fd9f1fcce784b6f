"""ServingCheck: proves in a fresh process that a candidate SavedModel serves before it may be pushed."""
