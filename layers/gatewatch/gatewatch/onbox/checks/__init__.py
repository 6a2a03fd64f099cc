"""gatewatch on-box checks: what an on-call engineer looks at on a host that answers 502, as one JSON document.

A stdlib-only package for the host's own python3 (3.8 or newer), one module per family of checks plus the
registry (``registry.py``), shipped to the host as ONE zipapp (``python3 gatewatch-onbox.pyz ARG``, built by
``gatewatch.onbox.bundle``) that the SSM document embeds and the local runner runs. It takes ONE argument, a JSON
object or ``b64:`` + base64 of it, and prints one JSON document (the OnboxReport of docs/data-model.md), always
valid and always under SSM's 24,000-character stdout limit.

Read-only: it runs only inspection commands (systemctl show, supervisorctl status/tail, ss, nginx -t/-T,
iptables -S, nft list ruleset, journalctl, dmesg) and reads files from the end with a byte bound. Every command
and network call has its own timeout; the checks run concurrently in threads under one global budget, and a
check that overruns is reported as ``unknown`` with error "timed out". Missing tools fall back to /proc;
missing permission is ``unknown`` with the reason.

Exit codes: 0 a report was printed (the checks' own statuses are data), 2 bad parameters (an error document
naming the field), 3 the checks themselves failed (still a valid JSON document).

Every module uses relative imports only, so the package runs under any name (``gatewatch.onbox.checks`` in the
library and its tests, ``gatewatch_onbox`` inside the zipapp). Python 3.8: socket.timeout is not yet
TimeoutError there (UP041), and one %-formatting style keeps the text free of newer f-string forms (UP031).
"""
