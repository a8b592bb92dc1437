"""Statistics on score frames. (Paired tests, corrections and power arrive with the reports issue.)"""

from ._ci import proportion_ci

__all__ = ["proportion_ci"]
