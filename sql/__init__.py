# Makes the versioned SQL models importable package data (importlib.resources).
