"""A local stand-in for WhatsApp Web, for the selenium engine's tests (see server.py)."""
from tests.standin.server import StandIn

__all__ = ["StandIn"]
