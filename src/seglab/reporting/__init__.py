"""Reporting: the comparison of trained models, its plots and its HTML/Markdown report."""
