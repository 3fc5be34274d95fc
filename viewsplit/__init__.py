"""viewsplit: disentangled multi-view representation learning.

Learn, for every sample, a consistent representation shared by all views and a specific
representation per view; evaluate them honestly; keep working when views are missing.
"""
__version__ = "0.1.0"
