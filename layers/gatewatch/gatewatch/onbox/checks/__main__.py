"""``python3 -m gatewatch.onbox.checks ARG`` (development); on a host the zipapp's own ``__main__`` runs it."""

from .main import entry

entry()
