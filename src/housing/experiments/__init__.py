"""Experiments: champion/challenger A/B analysis (abtest, verdict, stats, abtest_report), its promotion, the
traffic simulator, and the closed loop (loop, loop_steps, loop_text); docs/abtest.md."""
