"""carpd-py: keeps an OpenBSD carp(4)/pfsync(4) firewall pair honest."""

__version__ = "0.1.0"
