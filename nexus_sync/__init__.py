"""nexus-sync: social posts as Markdown files in git, reconciled with Nexus Share."""

__version__ = "0.1.0"
