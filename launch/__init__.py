"""Command-line programs: train, evaluate, enhance, separate, score, summary."""
