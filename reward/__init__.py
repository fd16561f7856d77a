"""Reward side of SGPO: outcome grading, the step-wise judge, and the reward encoding."""
