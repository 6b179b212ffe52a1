"""Runtime images: the generated files, their input hashes, OS packages, builds and SBOMs."""
