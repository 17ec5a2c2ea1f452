"""Bosun: run AI models on Kubernetes the simple way, and the same Workspace on one machine.

Layers (ARCHITECTURE.md): ``cli`` > (``operator`` | ``local`` | ``serving``) > ``render`` >
(``catalog`` | ``devices``) > ``api``. The pure core (``api``, ``catalog``, ``devices``,
``render``) does no I/O and imports neither kopf, kubernetes nor torch.
"""

__version__ = "0.1.0"
