"""An app on a runtime: app.yaml's rules, the app's Dockerfile and build context, its OS packages and SBOM."""
