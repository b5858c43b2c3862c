"""Metrics that detect mode collapse: the registry (`registry`), the evaluator that scores a
generator on fixed seeds (`evaluator`), and the measures they are built from."""
