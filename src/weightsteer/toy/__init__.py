"""Small models the project builds itself (no downloads): a tiny random model for tests and
the core demo; toyworld, the trained sandbox, builds on the same tokenizer code."""
