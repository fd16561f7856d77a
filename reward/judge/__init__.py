"""The step-wise judge: segments a wrong response into steps, finds its first incorrect step, grades it."""
