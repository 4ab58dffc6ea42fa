"""kloset_tasks package."""
