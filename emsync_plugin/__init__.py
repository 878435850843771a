"""emsync: scores a video edit automatically (EMSYNC design, arXiv:2502.10154)."""
__version__ = "0.1.0"
