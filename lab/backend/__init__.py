"""The lab's sample backend, shaped like the runbook's FastAPI service."""
