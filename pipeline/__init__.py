"""ZombieScan: find fake ("zombie") profiles and like-farm accounts."""

__version__ = "0.1.0"
