"""The SGPO recipe for verl 0.9.1. The method itself is `recipe/sgpo/advantage.py`."""
