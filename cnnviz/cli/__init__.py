"""`python -m cnnviz ...`: parse flags, call the core, print."""
from .main import main

__all__ = ["main"]
