"""Insight: an offline-first customer insight agent for marketers.

The package is layered (see docs/architecture in README): ``config``/``workspace`` →
``data`` → ``analytics``/``vectorstore`` → ``tools`` → ``agent`` → ``reports`` → ``cli``.
Importing the package is cheap on purpose: heavy libraries load inside the functions that use them.
"""

__version__ = "0.1.0"
