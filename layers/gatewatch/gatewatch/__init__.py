"""gatewatch: outside-in synthetic probing and root-cause diagnosis for sites behind Cloudflare and nginx.

The package is the shared library: the Lambda handlers in ``functions/`` and the ``gatewatch`` CLI are thin
shells around it. The domain modules import no AWS SDK and run no shell; adapters live at the edges.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
