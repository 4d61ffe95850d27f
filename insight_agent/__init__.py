"""Insight: an offline-first customer insight agent for marketers.

The package is layered (see docs/architecture in README): ``config``/``workspace`` →
``data`` → ``analytics``/``vectorstore`` → ``tools`` → ``agent`` → ``reports`` → ``cli``.
Importing the package is cheap on purpose: heavy libraries load inside the functions that use them.
"""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting (libgomp's default) collapse when another process
# holds a core: KMeans on 5k rows went from 0.1 s to 6 s on a shared 2-core machine. Passive
# waiting costs nothing measurable when the cores are free. Set before scikit-learn loads
# libgomp; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
