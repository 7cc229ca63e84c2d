"""Evaluation against the synthetic truth (``truth.*``): only code here may read it, never a model."""
