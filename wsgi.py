"""WSGI entry point: ``gunicorn wsgi:app`` (``openwa api`` runs it for you)."""
from app import create_app

app = create_app()
