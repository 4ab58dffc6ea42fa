"""kloset/cli package."""
