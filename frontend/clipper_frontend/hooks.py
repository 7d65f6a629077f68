"""Entry-point module of the clipper-frontend distribution.

The frontends implement no registration hook today; the entry point makes the installed frontend (and its
version) visible in ``clipper plugins`` and lets ``CLIPPER_DISABLED_PLUGINS=frontend`` be reported clearly.
"""
