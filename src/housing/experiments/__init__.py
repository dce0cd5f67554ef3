"""Experiments: champion/challenger A/B analysis and the traffic simulator."""
