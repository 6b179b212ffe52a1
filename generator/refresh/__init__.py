"""The scheduled refresh: what moved upstream, the flake's inputs, the changelog and which runtimes to rebuild."""
